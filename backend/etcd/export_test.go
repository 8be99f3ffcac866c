package etcd

// NewWatcherAfter lets tests start a watch at an old revision.
var NewWatcherAfter = (*Backend).newWatcherAfter
