module mmapfs

go 1.26.8

require (
	github.com/hanwen/go-fuse/v2 v2.12.1
	go.uber.org/zap v1.28.0
	golang.org/x/sys v0.50.0
)

require go.uber.org/multierr v1.10.0 // indirect
