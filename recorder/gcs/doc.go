// Package gcs is the recorder.Store driver for Google Cloud Storage. It is
// a Go module of its own, so that the Cloud Storage client stays out of
// the root module.
//
// Import it for its side effect and open a store by URI, or build one from
// a ready *storage.Client with Open:
//
//	import _ "github.com/sallyport/sallyport/recorder/gcs"
//
//	store, err := recorder.OpenStore(ctx, "gs://recordings?project=my-project")
//
//	store, err := gcs.Open(ctx, &gcs.Config{Client: client, Bucket: "recordings"})
//
// # URI
//
//	gs://BUCKET[/PREFIX/][?PARAMETERS]
//
// PREFIX is put before every object name. Parameters:
//
//	endpoint        JSON API root of an emulator or private endpoint, "http://127.0.0.1:4443"
//	project         project in which a missing bucket is created; default GOOGLE_CLOUD_PROJECT
//	chunk_size      resumable-upload chunk, a multiple of 256K ("16M", "512K"); smaller objects go in one request
//	create_bucket   "false": fail when the bucket is missing instead of creating it
//
// STORAGE_EMULATOR_HOST ("127.0.0.1:4443") points the client at an
// emulator, as in every Cloud Storage client library.
//
// # Credentials
//
// Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, the
// gcloud user credentials, or the metadata server of GCE/GKE/Cloud Run.
// An http:// endpoint and STORAGE_EMULATOR_HOST use no credentials (they
// never travel in clear text). A URI with credentials in it is refused;
// no credential is logged.
//
// # Permissions
//
// storage.buckets.get (Open), storage.buckets.create (only when Open
// creates the bucket), storage.objects.create (Put), storage.objects.get
// (Get, Stat), storage.objects.list (List), storage.objects.delete
// (Delete). The role roles/storage.objectUser covers all but the bucket
// ones. A refusal is returned as a *PermissionError that wraps
// recorder.ErrPermission and names the permission.
//
// # Create-only writes
//
// Every upload carries the precondition ifGenerationMatch=0
// (storage.Conditions{DoesNotExist: true}): Cloud Storage refuses it with
// 412 when the object exists, and Put returns an error wrapping
// recorder.ErrExists. Objects smaller than the chunk size are read whole
// first and sent in one request with their CRC32C, so a failing source
// never sends a byte; larger ones go in a resumable upload, which Cloud
// Storage keeps invisible until its last chunk. When Put fails (source
// error, wrong size, canceled context) it aborts the upload before the
// last chunk, so no partial object appears; an upload abandoned by a
// process that died is never finalised and expires after a week.
//
// fake-gcs-server (v1.56) honours the ifGenerationMatch=0 precondition for
// single and resumable uploads, and the driver's tests run against it.
//
// # Limits
//
// Objects up to 5 TiB. Each Put holds one chunk-sized buffer (default
// 16 MiB). Names are clean relative "/"-separated paths (io/fs.ValidPath);
// others fail with recorder.ErrInvalidName.
//
// # Lifecycle, errors and cancellation
//
// Open checks the bucket and creates it (in the project) when missing.
// Every method takes a context; canceling it stops the request in flight
// and a canceled Put leaves no object. Close closes a client the driver
// built (OpenURI) and makes later calls fail with an error wrapping
// net.ErrClosed; a client passed in Config stays the caller's. Missing
// objects and buckets are reported with errors wrapping
// recorder.ErrNotExist.
package gcs
