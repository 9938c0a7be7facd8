package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

const goFuseModule = "github.com/hanwen/go-fuse/v2"

// version is the module version this binary was built from, else the VCS
// revision (with "-dirty" for uncommitted changes), else "devel".
func version(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// goFuseVersion is the version of go-fuse linked in.
func goFuseVersion(bi *debug.BuildInfo) string {
	if bi != nil {
		for _, d := range bi.Deps {
			if d.Path == goFuseModule {
				if d.Replace != nil {
					d = d.Replace
				}
				return d.Version
			}
		}
	}
	return "unknown"
}

func versionText() string {
	bi, _ := debug.ReadBuildInfo()
	return fmt.Sprintf("mmapfs %s\ngo-fuse %s, %s %s/%s\n",
		version(bi), goFuseVersion(bi), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
