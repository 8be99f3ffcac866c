// Package azblob is the recorder.Store driver for Azure Blob Storage. It is
// a Go module of its own, so that the Azure SDK stays out of the root
// module.
//
// Import it for its side effect and open a store by URI, or build one from
// a ready *container.Client with Open:
//
//	import _ "github.com/sallyport/sallyport/recorder/azblob"
//
//	store, err := recorder.OpenStore(ctx, "azblob://recordings?account=mystorage")
//
//	store, err := azblob.Open(ctx, &azblob.Config{Client: containerClient})
//
// # URI
//
//	azblob://CONTAINER[/PREFIX/][?PARAMETERS]
//
// PREFIX is put before every blob name. Parameters:
//
//	account                  storage account; default AZURE_STORAGE_ACCOUNT
//	endpoint                 blob service URL; default https://ACCOUNT.blob.core.windows.net
//	                         (Azurite: http://127.0.0.1:10000/devstoreaccount1)
//	single_upload_threshold  size from which Put stages blocks; default 16M
//	block_size               staged block size; default 8M
//	concurrency              blocks one Put stages at once; default 4
//	create_container         "false": fail when the container is missing instead of creating it
//
// # Credentials
//
// The account key from AZURE_STORAGE_KEY (Shared Key authorization), or
// else a SAS token from AZURE_STORAGE_SAS_TOKEN. For Microsoft Entra ID
// (managed identity, workload identity), build a container.Client with an
// azidentity credential and pass it in Config.Client. A URI with
// credentials in it is refused; keys and tokens are never logged or put in
// an error.
//
// # Permissions
//
// With Entra ID, the data actions
// Microsoft.Storage/storageAccounts/blobServices/containers/read and
// .../containers/write (Open; write only to create the container),
// .../containers/blobs/write (Put), .../blobs/read (Get, Stat, List) and
// .../blobs/delete (Delete): the role "Storage Blob Data Contributor"
// covers them. A refusal is returned as a *PermissionError that wraps
// recorder.ErrPermission and names the data action.
//
// # Create-only writes
//
// Objects below the single-upload threshold go in one Put Blob with
// "If-None-Match: *". Larger ones are staged as uncommitted blocks (block
// IDs unique to the upload), which no reader sees, and committed by one
// Put Block List with "If-None-Match: *". The service refuses either when
// a committed blob has the name, and Put returns an error wrapping
// recorder.ErrExists; a Put that fails before its commit leaves no blob.
// Uncommitted blocks are cleared when a Put fails (and by the service
// after a week). Azurite counts a name that holds only uncommitted blocks
// as existing for "If-None-Match: *"; when a conditional Put Blob is
// refused but no committed blob exists, the driver clears those blocks
// and tries once more, never touching a committed blob.
//
// # Limits
//
// At most 50,000 blocks of up to 4000 MiB (the block size grows for
// larger objects). Names are clean relative "/"-separated paths
// (io/fs.ValidPath); others fail with recorder.ErrInvalidName.
//
// # Lifecycle, errors and cancellation
//
// Open checks the container and creates it when missing. Every method
// takes a context; canceling it stops the request in flight and a
// canceled Put leaves no blob. Close releases the connections of a client
// the driver built (OpenURI) and makes later calls fail with an error
// wrapping net.ErrClosed; a client passed in Config stays the caller's.
// Missing blobs and containers are reported with errors wrapping
// recorder.ErrNotExist.
package azblob
