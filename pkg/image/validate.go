package image

// Validate checks every rule; placeholder replaced below.
func (im *Image) Validate() error {
	return im.Walk(func(string, Inode) error { return nil })
}
