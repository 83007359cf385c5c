// Package oci turns container images into DAXFS images: it pulls
// oci://REGISTRY/REPO[:TAG]@sha256:DIGEST with go-containerregistry (or
// reads oci-layout:DIR[@sha256:DIGEST] and docker-archive:FILE.tar[:REPO:TAG]),
// streams the layers of the node's platform in order through
// image.Builder.AddTar, and keeps the result in an on-disk cache, so each
// image is converted once per node.
//
// Contract:
//   - Cache (Options.Dir, <state-dir>/oci on the node): <key>.daxfs beside
//     <key>.json (an Entry, written last); key = OCI digest named by the
//     source (index or manifest; docker-archive: config digest) + platform.
//     Size cap with LRU eviction (json mtime, touched on use).
//   - Once per key: in-process flights plus a flock on locks/<key>.lock.
//     A conversion runs detached from its caller (Options.Timeout); a
//     caller whose context ends gets ctx.Err() and a later call the result.
//   - Failure leaves no file: the image is a temp file renamed into place.
//   - A tag-only source is resolved once and recorded under tags/.
//   - Converter implements source.SchemeHandler; the caller builds it with
//     its Options (from flags: cmd/daxfs-csi) and hands it to a
//     source.Fetcher's Schemes. Importing the package registers nothing and
//     reads no environment. Resolve's digest argument is the DAXFS digest.
//   - Credentials: Options.Keychain (default: the node's docker config,
//     else anonymous), plus the pull secret named by source.WithPullSecret
//     (NAMESPACE/NAME through Options.PullSecrets, NAME from
//     Options.PullSecretDir). Never logged.
//   - Metrics: Converter.Active() (progress) and Options.OnConversion.
package oci
