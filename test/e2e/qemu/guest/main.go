// Command e2e-guest runs inside the QEMU guest of the daxfs-csi device e2e
// (test/e2e/qemu). It is built static (CGO_ENABLED=0) and put into the
// initramfs next to busybox. Results are printed on the serial console as
// single lines the host parses:
//
//	E2E-PASS <check> [details]
//	E2E-FAIL <check>: <reason>
//
// Subcommands:
//
//	raw     -phase write|verify -dev /dev/dax0.0 -nonce N   mmap the device and write/verify a pattern
//	pool    -phase create|reopen ...                        the pkg/daxdev pool test (pool.go)
//	csi info|stage|unstage ...                            CSI client of the two-host test (csi.go)
//	pool-check -pool SPEC -image FILE ...                   extent of an image: exact bytes, owners (csi.go)
//	record-sysfs -setup NAME                                 tar+gzip+base64 the sysfs trees discovery reads
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

func main() {
	klog.InitFlags(nil)
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: e2e-guest raw|pool|record-sysfs [flags]")
		os.Exit(2)
	}
	sub, args := os.Args[1], os.Args[2:]
	var failed bool
	switch sub {
	case "raw":
		failed = runRaw(args)
	case "pool":
		failed = runPool(args)
	case "csi":
		failed = runCSI(args)
	case "pool-check":
		failed = runPoolCheck(args)
	case "record-sysfs":
		failed = runRecord(args)
	default:
		fmt.Fprintf(os.Stderr, "e2e-guest: unknown subcommand %q\n", sub)
		os.Exit(2)
	}
	klog.Flush()
	if failed {
		os.Exit(1)
	}
}

// results collects PASS/FAIL lines for one subcommand.
type results struct{ failed bool }

func (r *results) pass(check, format string, a ...any) {
	fmt.Printf("E2E-PASS %s %s\n", check, fmt.Sprintf(format, a...))
}

func (r *results) fail(check string, err error) {
	r.failed = true
	fmt.Printf("E2E-FAIL %s: %v\n", check, err)
}

// check records err (nil = pass) and reports whether it passed.
func (r *results) check(check string, err error, format string, a ...any) bool {
	if err != nil {
		r.fail(check, err)
		return false
	}
	r.pass(check, format, a...)
	return true
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	return fs
}
