// Package s3 is the recorder.Store driver for Amazon S3 and S3-compatible
// object stores (MinIO, versitygw, Ceph RGW, ...). It is a Go module of
// its own, so that the AWS SDK stays out of the root module.
//
// Import it for its side effect and open a store by URI, or build one from
// a ready *s3.Client with Open:
//
//	import _ "github.com/sallyport/sallyport/recorder/s3"
//
//	store, err := recorder.OpenStore(ctx, "s3://recordings?region=eu-west-1")
//
//	store, err := s3.Open(ctx, &s3.Config{Client: client, Bucket: "recordings"})
//
// # URI
//
//	s3://BUCKET[/PREFIX/][?PARAMETERS]
//
// PREFIX is put before every object name. Parameters:
//
//	endpoint             S3 API URL for a non-AWS store, "http://127.0.0.1:9000"
//	region               region; default: the SDK's (AWS_REGION, shared config), else us-east-1
//	path_style           "true" for path-style addressing (MinIO, most non-AWS stores)
//	profile              shared-config profile for credentials and region
//	sse                  server-side encryption: AES256 (SSE-S3), aws:kms or aws:kms:dsse
//	sse_kms_key_id       KMS key for sse=aws:kms; default: the account's key
//	multipart_threshold  size from which Put uses a multipart upload; default 16M
//	part_size            multipart part size, at least 5M; default 8M
//	concurrency          parts one Put uploads at once; default 4
//	create_bucket        "false": fail when the bucket is missing instead of creating it
//
// Unknown parameters are errors, so a typo does not silently change
// behaviour.
//
// # Credentials
//
// Credentials come from the AWS SDK's default chain: the environment
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the
// shared files (~/.aws), web identity (EKS/IRSA), ECS and EC2 instance
// roles. A URI with credentials in it is refused; no credential is ever
// logged or put in an error.
//
// # Permissions
//
// The IAM actions the driver uses: s3:ListBucket (Open's HeadBucket, List),
// s3:CreateBucket (only when Open creates the bucket), s3:PutObject
// (Put, including the multipart calls), s3:AbortMultipartUpload and
// s3:ListBucketMultipartUploads (clean-up of abandoned uploads),
// s3:GetObject (Get, Stat) and s3:DeleteObject (Delete, retention jobs).
// A refusal is returned as a *PermissionError that wraps
// recorder.ErrPermission and names the action that is missing.
//
// # Create-only writes
//
// Put never replaces an object. Objects below the multipart threshold go
// in one PutObject with "If-None-Match: *"; larger ones in a multipart
// upload whose CompleteMultipartUpload carries "If-None-Match: *". The
// store refuses either when the key exists (412), and Put returns an error
// wrapping recorder.ErrExists. AWS S3 (since 2024), MinIO and versitygw
// honour these conditional writes; a store that ignores them would
// silently overwrite, so check yours before relying on it.
//
// S3 shows an object only once its PutObject or CompleteMultipartUpload
// succeeds: no reader ever sees part of an object, even when the writing
// process dies mid-way. Put aborts its multipart upload when it fails; an
// upload left by a process that died is invisible and is aborted by the
// next multipart Put of the same name once it is older than
// Config.StaleUploadAge (default 1 h). A lifecycle rule
// (AbortIncompleteMultipartUpload) on the bucket cleans up the rest.
//
// # Data integrity
//
// Multipart parts carry a CRC32 checksum the store verifies. When the
// reader given to Put is an io.ReaderAt and io.Seeker (an *os.File or
// io.SectionReader, as the spool passes), parts are read at their offsets
// without copying; other readers are read into part-sized buffers
// (Concurrency of them at most). A reader that yields other than the
// announced size fails the Put with recorder.ErrSize and leaves nothing.
//
// # Limits
//
// Objects up to 5 TiB; at most 10,000 parts (the part size grows for
// larger objects). Names are clean relative "/"-separated paths
// (io/fs.ValidPath); others fail with recorder.ErrInvalidName.
//
// # Lifecycle, errors and cancellation
//
// Open checks the bucket (HeadBucket) and creates it when missing.
// Every method takes a context: canceling it stops the request in flight,
// and a canceled Put leaves no object. Close releases the connections of
// a client the driver built (OpenURI) and makes later calls fail with an
// error wrapping net.ErrClosed; a client passed in Config stays the
// caller's. Missing objects and buckets are reported with errors wrapping
// recorder.ErrNotExist.
package s3
