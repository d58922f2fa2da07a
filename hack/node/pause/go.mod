module kabin.dev/hack/node/pause

go 1.22
