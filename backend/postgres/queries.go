package postgres

import "strings"

// queries holds the driver's SQL with the object names filled in.
//
// Every single-key write is one statement: alone, one round trip and its
// own transaction, or one of a batch's (batch.go). Each but the swap on a
// revision takes its revision from the sequence only once its condition
// holds (a row locked FOR UPDATE, or NOT EXISTS), and each writes its
// change-table row in the same statement. When a statement takes a
// revision but then writes nothing (a concurrent Create won the race), it
// writes a no-op change row instead, so the change stream never waits for
// a revision that will not come.
type queries struct {
	get, getRange, getRangeOpen                  string
	put, create, update, casRevision, casValue   string
	del, deleteRange, deleteRangeOpen, keepAlive string
	awPlaceholders, awLock, awNextval            string
	awPut, awDelete, awNoop, awCleanup           string
	sweep, prune                                 string
	tailInit, tailInitSeq, tailPresent, tailPoll string
	tailLate                                     string
}

const live = `(expires IS NULL OR expires > now())`

// deleteRange is the DeleteRange statement for a range condition.
func deleteRange(cond string) string {
	const noopD = `, noop AS (INSERT INTO EVENTS (revision, key, op) SELECT r, $1::bytea, 0 FROM rev WHERE NOT EXISTS (SELECT 1 FROM d))`
	return `WITH cur AS (SELECT key, LIVE AS live FROM KV WHERE ` + cond + ` FOR UPDATE),
rev AS (SELECT nextval(SEQ) AS r WHERE EXISTS (SELECT 1 FROM cur)),
d AS (DELETE FROM KV USING cur, rev WHERE KV.key = cur.key RETURNING KV.key, rev.r AS revision, cur.live),
ev AS (INSERT INTO EVENTS (revision, key, op) SELECT revision, key, 2 FROM d)` + noopD + `
SELECT count(*) FILTER (WHERE live) FROM d`
}

func newQueries(n names) queries {
	r := strings.NewReplacer("SEQNAME", n.seqName, "KV", n.kv, "EVENTS", n.events, "SEQ", n.seq, "LIVE", live)
	f := func(s string) string { return r.Replace(s) }
	// The no-op guard shared by conditional writes: a revision was taken
	// but the write CTE changed no row.
	noop := func(writeCTE string) string {
		return `, noop AS (INSERT INTO EVENTS (revision, key, op) SELECT r, $1::bytea, 0 FROM rev WHERE NOT EXISTS (SELECT 1 FROM ` + writeCTE + `))`
	}
	condUpdate := func(cond string) string {
		return f(`WITH cur AS (SELECT key FROM KV WHERE key = $1::bytea AND LIVE` + cond + ` FOR UPDATE),
rev AS (SELECT nextval(SEQ) AS r FROM cur),
up AS (UPDATE KV SET value = $2::bytea, revision = rev.r, expires = $3::timestamptz FROM rev WHERE KV.key = $1::bytea RETURNING KV.revision),
ev AS (INSERT INTO EVENTS (revision, key, op, value, expires) SELECT revision, $1::bytea, 1, $2::bytea, $3::timestamptz FROM up)` + noop("up") + `
SELECT revision FROM up`)
	}
	return queries{
		get: f(`SELECT value, revision, expires FROM KV WHERE key = $1::bytea AND LIVE`),
		// Ranges with and without an end are separate statements, so
		// that the end is always an index bound (a generic plan would
		// keep "$2 IS NULL OR key < $2" as a filter and read on past
		// the end).
		getRange: f(`SELECT key, value, revision, expires FROM KV
WHERE key >= $1::bytea AND key < $2::bytea AND LIVE ORDER BY key LIMIT $3`),
		getRangeOpen: f(`SELECT key, value, revision, expires FROM KV
WHERE key >= $1::bytea AND LIVE ORDER BY key LIMIT $2`),

		// Put and Create lock the key's row, when there is one, before
		// they take their revision, so that a write that committed on
		// the row in the meantime (a Delete, a sweep) has a lower one.
		// Two writers that both found no row race to insert; the loser
		// updates the winner's row only if its revision is the higher,
		// and otherwise its write is ordered before the winner's: its
		// event still goes out, at its revision, and the row keeps the
		// winner's item. So a key's last event is what its row holds.
		put: f(`WITH cur AS (SELECT key FROM KV WHERE key = $1::bytea FOR UPDATE),
rev AS (SELECT nextval(SEQ) AS r WHERE (SELECT count(*) FROM cur) >= 0),
up AS (INSERT INTO KV (key, value, revision, expires) SELECT $1::bytea, $2::bytea, r, $3::timestamptz FROM rev
	ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, expires = EXCLUDED.expires
	WHERE KV.revision < EXCLUDED.revision),
ev AS (INSERT INTO EVENTS (revision, key, op, value, expires) SELECT r, $1::bytea, 1, $2::bytea, $3::timestamptz FROM rev)
SELECT r FROM rev`),

		create: f(`WITH cur AS (SELECT LIVE AS live FROM KV WHERE key = $1::bytea FOR UPDATE),
rev AS (SELECT nextval(SEQ) AS r WHERE NOT EXISTS (SELECT 1 FROM cur WHERE live)),
up AS (INSERT INTO KV (key, value, revision, expires) SELECT $1::bytea, $2::bytea, r, $3::timestamptz FROM rev
	ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, expires = EXCLUDED.expires
	WHERE KV.expires IS NOT NULL AND KV.expires <= now() AND KV.revision < EXCLUDED.revision
	RETURNING revision),
ev AS (INSERT INTO EVENTS (revision, key, op, value, expires) SELECT revision, $1::bytea, 1, $2::bytea, $3::timestamptz FROM up)` + noop("up") + `
SELECT revision FROM up`),

		update:   condUpdate(""),
		casValue: condUpdate(" AND value = $4::bytea"),
		// A swap on the revision needs no lock before its revision is
		// taken: every write that commits on the row in the meantime
		// gives it a new revision, so the condition then fails (a no-op
		// fills the revision taken), and when the condition holds the
		// row's revision is the one the caller read, which is lower
		// than any revision taken after that read. One lookup, no
		// separate row lock.
		casRevision: f(`WITH rev AS (SELECT nextval(SEQ) AS r),
up AS (UPDATE KV SET value = $2::bytea, revision = rev.r, expires = $3::timestamptz FROM rev
	WHERE KV.key = $1::bytea AND KV.revision = $4::bigint AND LIVE RETURNING KV.revision),
ev AS (INSERT INTO EVENTS (revision, key, op, value, expires) SELECT revision, $1::bytea, 1, $2::bytea, $3::timestamptz FROM up)` + noop("up") + `
SELECT revision FROM up`),

		keepAlive: f(`WITH cur AS (SELECT key FROM KV WHERE key = $1::bytea AND LIVE FOR UPDATE),
rev AS (SELECT nextval(SEQ) AS r FROM cur),
up AS (UPDATE KV SET revision = rev.r, expires = $2::timestamptz FROM rev WHERE KV.key = $1::bytea RETURNING KV.revision, KV.value),
ev AS (INSERT INTO EVENTS (revision, key, op, value, expires) SELECT revision, $1::bytea, 1, value, $2::timestamptz FROM up)` + noop("up") + `
SELECT revision FROM up`),

		del: f(`WITH cur AS (SELECT key FROM KV WHERE key = $1::bytea AND LIVE FOR UPDATE),
rev AS (SELECT nextval(SEQ) AS r FROM cur),
d AS (DELETE FROM KV USING rev WHERE KV.key = $1::bytea RETURNING rev.r AS revision),
ev AS (INSERT INTO EVENTS (revision, key, op) SELECT revision, $1::bytea, 2 FROM d)` + noop("d") + `
SELECT revision FROM d`),

		deleteRange:     f(deleteRange("key >= $1::bytea AND key < $2::bytea")),
		deleteRangeOpen: f(deleteRange("key >= $1::bytea")),

		awPlaceholders: f(`INSERT INTO KV (key, value, revision, expires)
SELECT k, ''::bytea, 0, '-infinity' FROM unnest($1::bytea[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING`),
		awLock:    f(`SELECT key, revision, LIVE FROM KV WHERE key = ANY($1::bytea[]) ORDER BY key FOR UPDATE`),
		awNextval: f(`SELECT nextval(SEQ)`),
		awPut: f(`WITH v AS (SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::timestamptz[]) AS t(key, value, expires)),
up AS (INSERT INTO KV (key, value, revision, expires) SELECT key, value, currval(SEQ), expires FROM v
	ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, expires = EXCLUDED.expires)
INSERT INTO EVENTS (revision, key, op, value, expires) SELECT currval(SEQ), key, 1, value, expires FROM v`),
		awDelete: f(`WITH d AS (DELETE FROM KV WHERE key = ANY($1::bytea[]) RETURNING key)
INSERT INTO EVENTS (revision, key, op) SELECT currval(SEQ), key, 2 FROM d`),
		awNoop:    f(`INSERT INTO EVENTS (revision, key, op) VALUES (currval(SEQ), $1::bytea, 0)`),
		awCleanup: f(`DELETE FROM KV WHERE key = ANY($1::bytea[]) AND revision = 0`),

		// The sweep locks a small batch of expired rows, skipping rows
		// another transaction holds, and deletes them in one statement.
		sweep: f(`WITH cur AS (SELECT key FROM KV WHERE expires <= now() ORDER BY expires LIMIT $1 FOR UPDATE SKIP LOCKED),
rev AS (SELECT nextval(SEQ) AS r WHERE EXISTS (SELECT 1 FROM cur)),
d AS (DELETE FROM KV USING cur, rev WHERE KV.key = cur.key RETURNING KV.key, rev.r AS revision),
ev AS (INSERT INTO EVENTS (revision, key, op) SELECT revision, key, 2 FROM d),
noop AS (INSERT INTO EVENTS (revision, key, op) SELECT r, ''::bytea, 0 FROM rev WHERE NOT EXISTS (SELECT 1 FROM d))
SELECT count(*) FROM d`),
		prune: f(`WITH old AS (SELECT revision, key FROM EVENTS ORDER BY revision LIMIT $1)
DELETE FROM EVENTS e USING old WHERE e.revision = old.revision AND e.key = old.key
AND e.created < now() - make_interval(secs => $2::double precision)
AND e.revision < (SELECT max(revision) FROM EVENTS)`),

		tailInit: f(`SELECT revision, key FROM EVENTS ORDER BY revision DESC, key DESC LIMIT 1`),
		// The change table is empty only before the first write and
		// after a crash of the server emptied it (it is unlogged): the
		// sequence then says where the stream starts.
		tailInitSeq: f(`SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM SEQNAME`),
		tailPresent: f(`SELECT DISTINCT revision FROM EVENTS WHERE revision > $1 AND revision <= $2`),
		tailPoll: f(`SELECT revision, key, op, value, expires FROM EVENTS
WHERE (revision, key) > ($1::bigint, $2::bytea) ORDER BY revision, key LIMIT $3`),
		tailLate: f(`SELECT DISTINCT revision FROM EVENTS WHERE revision = ANY($1::bigint[])`),
	}
}
