package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/sallyport/sallyport/recorder"
)

// Scheme is the URI scheme the driver registers with recorder.RegisterStore.
const Scheme = "s3"

// Limits of the S3 multipart protocol and the driver's defaults.
const (
	MinPartSize               = 5 << 20  // smallest part S3 accepts (except the last)
	MaxParts                  = 10000    // most parts in one upload
	DefaultPartSize           = 8 << 20  // Config.PartSize when zero
	DefaultMultipartThreshold = 16 << 20 // Config.MultipartThreshold when zero
	DefaultConcurrency        = 4        // Config.Concurrency when zero
	DefaultStaleUploadAge     = time.Hour
	maxObjectSize             = 5 << 40 // 5 TiB, the S3 object limit
)

// errClosed: a call after Close.
var errClosed = fmt.Errorf("s3: store is closed: %w", net.ErrClosed)

// Config configures a Store. The zero value of every field but Client and
// Bucket selects a default.
type Config struct {
	// Client is the S3 client to use. Required. The Store does not close
	// its connections; the caller owns it.
	Client *awss3.Client
	// Bucket is the bucket that holds the objects. Required.
	Bucket string
	// Prefix is prepended to every object name ("recordings/"); zero
	// means none. A non-empty prefix should end in "/".
	Prefix string
	// Region is the location constraint used when Open creates the
	// bucket; zero means the client's region (us-east-1 needs none).
	Region string
	// NoCreateBucket makes Open fail when the bucket is missing instead of
	// creating it. Zero: the bucket is created.
	NoCreateBucket bool
	// SSE selects server-side encryption: "" (the bucket's default),
	// "AES256" (SSE-S3) or "aws:kms" (SSE-KMS).
	SSE string
	// SSEKMSKeyID is the KMS key for SSE "aws:kms"; zero means the
	// account's default key.
	SSEKMSKeyID string
	// MultipartThreshold is the size from which Put uses a multipart
	// upload; below it Put sends one request. Zero means
	// DefaultMultipartThreshold.
	MultipartThreshold int64
	// PartSize is the size of each part of a multipart upload, at least
	// MinPartSize; it grows when an object would need more than MaxParts
	// parts. Zero means DefaultPartSize.
	PartSize int64
	// Concurrency is the number of parts one Put uploads at once; each
	// costs a part-sized buffer unless the reader is an io.ReaderAt and
	// io.Seeker. Zero means DefaultConcurrency.
	Concurrency int
	// StaleUploadAge: a multipart upload for the same name that began
	// longer ago than this (left by a process that died mid-way) is
	// aborted by the next multipart Put of that name. Zero means
	// DefaultStaleUploadAge; negative disables the clean-up.
	StaleUploadAge time.Duration
	// Logger receives debug and warning records; nil discards them.
	// Credentials are never logged.
	Logger *slog.Logger
}

// Store is a recorder.Store in an S3 bucket. It is safe for concurrent use.
type Store struct {
	c         *awss3.Client
	bucket    string
	prefix    string
	sse       types.ServerSideEncryption
	kmsKey    string
	threshold int64
	partSize  int64
	conc      int
	staleAge  time.Duration
	log       *slog.Logger
	transport *transports // owned when the Store built the client
	closed    atomic.Bool
}

var _ recorder.Store = (*Store)(nil)

func init() {
	recorder.RegisterStore(Scheme, func(ctx context.Context, u *url.URL) (recorder.Store, error) {
		return OpenURI(ctx, u)
	})
}

// Open checks the configuration, makes sure the bucket exists (creating it
// unless NoCreateBucket) and returns the Store.
func Open(ctx context.Context, cfg *Config) (*Store, error) {
	if cfg == nil || cfg.Client == nil {
		return nil, errors.New("s3: Config.Client is required")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3: Config.Bucket is required")
	}
	s := &Store{
		c:         cfg.Client,
		bucket:    cfg.Bucket,
		prefix:    cfg.Prefix,
		kmsKey:    cfg.SSEKMSKeyID,
		threshold: cfg.MultipartThreshold,
		partSize:  cfg.PartSize,
		conc:      cfg.Concurrency,
		staleAge:  cfg.StaleUploadAge,
		log:       cfg.Logger,
	}
	switch cfg.SSE {
	case "":
	case string(types.ServerSideEncryptionAes256), string(types.ServerSideEncryptionAwsKms), string(types.ServerSideEncryptionAwsKmsDsse):
		s.sse = types.ServerSideEncryption(cfg.SSE)
	default:
		return nil, fmt.Errorf("s3: unknown SSE %q (want AES256, aws:kms or aws:kms:dsse)", cfg.SSE)
	}
	if s.kmsKey != "" && s.sse != types.ServerSideEncryptionAwsKms && s.sse != types.ServerSideEncryptionAwsKmsDsse {
		return nil, errors.New("s3: SSEKMSKeyID needs SSE aws:kms")
	}
	if s.prefix != "" && (strings.HasPrefix(s.prefix, "/") || strings.Contains(s.prefix, "//")) {
		return nil, fmt.Errorf("s3: bad prefix %q", s.prefix)
	}
	if s.threshold == 0 {
		s.threshold = DefaultMultipartThreshold
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.partSize < MinPartSize {
		return nil, fmt.Errorf("s3: PartSize %d is below the S3 minimum %d", s.partSize, MinPartSize)
	}
	if s.threshold < 0 {
		return nil, fmt.Errorf("s3: negative MultipartThreshold %d", s.threshold)
	}
	if s.conc == 0 {
		s.conc = DefaultConcurrency
	}
	if s.conc < 0 {
		return nil, fmt.Errorf("s3: negative Concurrency %d", s.conc)
	}
	if s.staleAge == 0 {
		s.staleAge = DefaultStaleUploadAge
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.ensureBucket(ctx, cfg.Region, cfg.NoCreateBucket); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) ensureBucket(ctx context.Context, region string, noCreate bool) error {
	_, err := s.c.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &s.bucket})
	if err == nil {
		return nil
	}
	code := statusCode(err)
	if code == http.StatusForbidden {
		return s.wrap(err, "HeadBucket", "s3:ListBucket", "")
	}
	if code != http.StatusNotFound {
		return s.wrap(err, "HeadBucket", "s3:ListBucket", "")
	}
	if noCreate {
		return fmt.Errorf("s3: bucket %q does not exist: %w", s.bucket, recorder.ErrNotExist)
	}
	in := &awss3.CreateBucketInput{Bucket: &s.bucket}
	if region == "" {
		region = s.c.Options().Region
	}
	if region != "" && region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}
	}
	_, err = s.c.CreateBucket(ctx, in)
	if err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) || apiCode(err) == "BucketAlreadyOwnedByYou" {
			return nil // created concurrently by another opener
		}
		return s.wrap(err, "CreateBucket", "s3:CreateBucket", "")
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "s3: created bucket", slog.String("bucket", s.bucket))
	return nil
}

// OpenURI opens the Store a URI names:
//
//	s3://bucket/optional/prefix/?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true&sse=AES256
//
// Credentials come from the AWS SDK's default chain (environment, shared
// files, web identity, instance role); see the package documentation for
// every parameter.
func OpenURI(ctx context.Context, u *url.URL) (*Store, error) {
	su, err := recorder.ParseStoreURI(u, recorder.URISpec{
		Driver: "s3", Scheme: Scheme, Container: "bucket",
		Credentials: "the environment or shared config",
		Params:      []string{"endpoint", "region", "path_style", "sse", "sse_kms_key_id", "part_size", "multipart_threshold", "concurrency", "create_bucket", "profile"},
	})
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		Bucket:             su.Container,
		Prefix:             su.Prefix,
		Logger:             slog.New(slog.DiscardHandler),
		NoCreateBucket:     !su.Bool("create_bucket", true),
		SSE:                su.Get("sse"),
		SSEKMSKeyID:        su.Get("sse_kms_key_id"),
		PartSize:           su.Size("part_size"),
		MultipartThreshold: su.Size("multipart_threshold"),
		Concurrency:        su.Count("concurrency"),
	}
	pathStyle := su.Bool("path_style", false)
	endpoint := su.Endpoint("endpoint")
	if err := su.Err(); err != nil {
		return nil, err
	}

	// The transport the SDK builds is recorded so that Close can release
	// its connections.
	tr := &transports{}
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 64
		tr.add(t)
	})
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithHTTPClient(hc)}
	if region := su.Get("region"); region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	if p := su.Get("profile"); p != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(p))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	cfg.Client = awss3.NewFromConfig(awsCfg, func(o *awss3.Options) {
		if endpoint != nil {
			o.BaseEndpoint = aws.String(endpoint.String())
		}
		o.UsePathStyle = pathStyle
		o.Logger = logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			cfg.Logger.LogAttrs(context.Background(), slog.LevelDebug, "s3: sdk: "+fmt.Sprintf(format, v...), slog.String("class", string(c)))
		})
	})
	s, err := Open(ctx, cfg)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	s.transport = tr
	return s, nil
}

// transports records the HTTP transports of a client the Store built.
type transports struct {
	mu sync.Mutex
	ts []*http.Transport
}

func (t *transports) add(tr *http.Transport) {
	t.mu.Lock()
	t.ts = append(t.ts, tr)
	t.mu.Unlock()
}

func (t *transports) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, tr := range t.ts {
		tr.CloseIdleConnections()
	}
}

// Bucket returns the bucket the Store writes to.
func (s *Store) Bucket() string { return s.bucket }

// Client returns the S3 client the Store uses.
func (s *Store) Client() *awss3.Client { return s.c }

// Key returns the S3 key that holds the object name.
func (s *Store) Key(name string) string { return s.prefix + name }

func (s *Store) check(name string) error {
	if s.closed.Load() {
		return errClosed
	}
	return recorder.ValidateName(name)
}

// Put uploads size bytes from r under name, only if no object has that
// name. Objects smaller than the multipart threshold go in one PutObject
// with If-None-Match: *; larger ones in a multipart upload completed with
// If-None-Match: *, which S3 keeps invisible until it completes and which
// Put aborts when it fails.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := s.check(name); err != nil {
		return err
	}
	if size < 0 || size > maxObjectSize {
		return fmt.Errorf("%w: size %d out of range", recorder.ErrSize, size)
	}
	if size < s.threshold || size < MinPartSize {
		return s.putSingle(ctx, name, r, size)
	}
	return s.putMultipart(ctx, name, r, size)
}

func (s *Store) putSingle(ctx context.Context, name string, r io.Reader, size int64) error {
	b, err := recorder.PutBody(r, size)
	if err != nil {
		return err
	}
	key := s.Key(name)
	in := &awss3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          b,
		ContentLength: aws.Int64(size),
		IfNoneMatch:   aws.String("*"),
	}
	if s.sse != "" {
		in.ServerSideEncryption = s.sse
	}
	if s.kmsKey != "" {
		in.SSEKMSKeyId = &s.kmsKey
	}
	// A conditional write that races another one may be answered 409
	// ConditionalRequestConflict: try again, and the loser gets 412.
	for attempt := 0; ; attempt++ {
		_, err = s.c.PutObject(ctx, in)
		if err == nil || apiCode(err) != "ConditionalRequestConflict" || attempt == 4 {
			break
		}
		if _, serr := b.Seek(0, io.SeekStart); serr != nil {
			return fmt.Errorf("s3: rewind object data: %w", serr)
		}
		if err := sleep(ctx, time.Duration(attempt+1)*50*time.Millisecond); err != nil {
			return err
		}
	}
	if err != nil {
		return s.wrap(err, "PutObject", "s3:PutObject", name)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) putMultipart(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	key := s.Key(name)
	// Fail early when the object exists: the final conditional complete
	// would refuse it anyway, after uploading every byte.
	if _, herr := s.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key}); herr == nil {
		return fmt.Errorf("s3: put %q: %w", name, recorder.ErrExists)
	} else if statusCode(herr) != http.StatusNotFound {
		return s.wrap(herr, "HeadObject", "s3:GetObject", name)
	}
	s.abortStale(ctx, key)

	partSize := recorder.PartSize(size, s.partSize, MaxParts)
	nparts := recorder.PartCount(size, partSize)

	// CRC32 per part, checked by the server, and named at creation so
	// that every server accepts the part checksums at completion.
	cin := &awss3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
	if s.sse != "" {
		cin.ServerSideEncryption = s.sse
	}
	if s.kmsKey != "" {
		cin.SSEKMSKeyId = &s.kmsKey
	}
	cout, err := s.c.CreateMultipartUpload(ctx, cin)
	if err != nil {
		return s.wrap(err, "CreateMultipartUpload", "s3:PutObject", name)
	}
	uploadID := cout.UploadId
	s.log.LogAttrs(ctx, slog.LevelDebug, "s3: multipart upload started", slog.String("key", key), slog.Int("parts", nparts))
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is done, so the parts do not linger.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.c.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID}); aerr != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "s3: abort multipart upload", slog.String("key", key), slog.String("error", aerr.Error()))
		}
	}()

	// Parts are read at their offsets when r allows, so they need no
	// buffer; otherwise part by part into a few buffers.
	parts := make([]types.CompletedPart, nparts)
	err = recorder.UploadParts(ctx, r, size, partSize, s.conc, func(ctx context.Context, i int, body io.ReadSeeker, n int64) error {
		num := int32(i + 1)
		out, err := s.c.UploadPart(ctx, &awss3.UploadPartInput{
			Bucket: &s.bucket, Key: &key, UploadId: uploadID,
			PartNumber: aws.Int32(num), Body: body, ContentLength: aws.Int64(n),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return s.wrap(err, "UploadPart", "s3:PutObject", name)
		}
		parts[i] = types.CompletedPart{
			PartNumber:     aws.Int32(num),
			ETag:           out.ETag,
			ChecksumCRC32:  out.ChecksumCRC32,
			ChecksumCRC32C: out.ChecksumCRC32C,
			ChecksumSHA1:   out.ChecksumSHA1,
			ChecksumSHA256: out.ChecksumSHA256,
		}
		return nil
	})
	if err != nil {
		return err
	}
	in := &awss3.CompleteMultipartUploadInput{
		Bucket: &s.bucket, Key: &key, UploadId: uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	}
	for attempt := 0; ; attempt++ {
		_, err = s.c.CompleteMultipartUpload(ctx, in)
		if err == nil || apiCode(err) != "ConditionalRequestConflict" || attempt == 4 {
			break
		}
		if err := sleep(ctx, time.Duration(attempt+1)*50*time.Millisecond); err != nil {
			return err
		}
	}
	if err != nil {
		return s.wrap(err, "CompleteMultipartUpload", "s3:PutObject", name)
	}
	return nil
}

// abortStale aborts the multipart uploads of key that began more than
// StaleUploadAge ago: what a process that died mid-upload left behind.
// Failures are logged, not returned: the clean-up is best effort.
func (s *Store) abortStale(ctx context.Context, key string) {
	if s.staleAge < 0 {
		return
	}
	out, err := s.c.ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: &s.bucket, Prefix: &key})
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, "s3: list multipart uploads", slog.String("key", key), slog.String("error", err.Error()))
		return
	}
	cutoff := time.Now().Add(-s.staleAge)
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) != key || u.Initiated == nil || u.Initiated.After(cutoff) {
			continue
		}
		_, err := s.c.AbortMultipartUpload(ctx, &awss3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: u.UploadId})
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "s3: abort stale multipart upload", slog.String("key", key), slog.String("error", err.Error()))
			continue
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "s3: aborted stale multipart upload", slog.String("key", key), slog.Time("initiated", *u.Initiated))
	}
}

// Get opens the object for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := s.check(name); err != nil {
		return nil, err
	}
	key := s.Key(name)
	out, err := s.c.GetObject(ctx, &awss3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, s.wrap(err, "GetObject", "s3:GetObject", name)
	}
	return out.Body, nil
}

// Stat describes the object.
func (s *Store) Stat(ctx context.Context, name string) (recorder.ObjectInfo, error) {
	if err := s.check(name); err != nil {
		return recorder.ObjectInfo{}, err
	}
	key := s.Key(name)
	out, err := s.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return recorder.ObjectInfo{}, s.wrap(err, "HeadObject", "s3:GetObject", name)
	}
	return recorder.ObjectInfo{Name: name, Size: aws.ToInt64(out.ContentLength), Modified: aws.ToTime(out.LastModified)}, nil
}

// List returns the objects whose names begin with prefix, sorted by name.
func (s *Store) List(ctx context.Context, prefix string) ([]recorder.ObjectInfo, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	full := s.prefix + prefix
	p := awss3.NewListObjectsV2Paginator(s.c, &awss3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &full})
	var list []recorder.ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap(err, "ListObjectsV2", "s3:ListBucket", "")
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if !strings.HasPrefix(k, s.prefix) {
				continue
			}
			list = append(list, recorder.ObjectInfo{Name: k[len(s.prefix):], Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// Delete removes the object. S3 deletes are idempotent, so Delete looks
// the object up first to report ErrNotExist.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.check(name); err != nil {
		return err
	}
	key := s.Key(name)
	if _, err := s.c.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return s.wrap(err, "HeadObject", "s3:GetObject", name)
	}
	if _, err := s.c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return s.wrap(err, "DeleteObject", "s3:DeleteObject", name)
	}
	return nil
}

// Close releases the connections of a client the Store built itself
// (OpenURI). Later calls fail with an error wrapping net.ErrClosed. Close
// is safe to call more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// PermissionError reports an operation S3 refused: Op is the API call
// ("PutObject"), Permission the IAM action the caller lacks
// ("s3:PutObject"), Container the bucket and Object the key. It wraps
// recorder.ErrPermission and the SDK's error.
type PermissionError = recorder.PermissionError

// wrap turns an SDK error into one of the recorder's: missing objects
// wrap ErrNotExist, refused preconditions ErrExists, denials
// ErrPermission (naming the IAM action perm).
func (s *Store) wrap(err error, op, perm, name string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("s3: %s %q: %w", op, name, err)
	}
	code, status := apiCode(err), statusCode(err)
	switch {
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return fmt.Errorf("s3: put %q: %w", name, recorder.ErrExists)
	case code == "AccessDenied" || code == "Forbidden" || status == http.StatusForbidden:
		obj := ""
		if name != "" {
			obj = s.Key(name)
		}
		return &PermissionError{Driver: "s3", Op: op, Permission: perm, Container: s.bucket, Object: obj, Err: err}
	case code == "NoSuchBucket":
		return fmt.Errorf("s3: %s: bucket %q does not exist: %w", op, s.bucket, recorder.ErrNotExist)
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		return fmt.Errorf("s3: %s %q: %w", op, name, recorder.ErrNotExist)
	}
	return fmt.Errorf("s3: %s %q: %w", op, name, err)
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func statusCode(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}
