# Sourced by the project's scripts: where test tools live and how to reach them.
# Tools built from the Go module proxy or npm go to $SALLYPORT_TOOLS, outside
# the work tree, so a fresh clone on the same machine reuses them.
export SALLYPORT_TOOLS="${SALLYPORT_TOOLS:-$HOME/.cache/sallyport-tools}"
export PATH="$SALLYPORT_TOOLS/bin:$SALLYPORT_TOOLS/node_modules/.bin:$(go env GOPATH)/bin:/usr/sbin:/sbin:$PATH"
# The modules of this repository: the root and every driver module with its own go.mod.
sallyport_modules() {
	find . -name go.mod -not -path './.git/*' -not -path '*/testdata/*' -not -path '*/node_modules/*' -printf '%h\n' | sort
}
