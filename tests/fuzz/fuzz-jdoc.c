/*
 * fuzz-jdoc.c: traj-extract's file splitter (tools/traj/nd_jdoc.c), which
 * tells JSONL from pretty-printed documents and cuts a file into
 * documents.  Any file: every document lies within the file, starts where
 * it says, and the splitter ends.
 */
#include "tests/fuzz/fuzz.h"
#include "tools/traj/nd_jdoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nd_jdoc_reader *r = nd_jdoc_open(fuzz_file(data, size));
	struct nd_jdoc doc;
	char msg[256];
	long line = 0, prev_line = 0;
	int rc;
	size_t total = 0;

	FUZZ_CHECK(r != NULL);
	while ((rc = nd_jdoc_next(r, &doc, msg, sizeof(msg), &line)) == 1) {
		long l, c;

		FUZZ_CHECK(doc.len <= size);
		FUZZ_CHECK(doc.line >= prev_line && doc.line >= 1 && doc.col >= 1);
		if (doc.len > 0) {
			nd_jdoc_locate(&doc, doc.len - 1, &l, &c);
			FUZZ_CHECK(l >= doc.line && c >= 1);
		}
		prev_line = doc.line;
		total += doc.len;
		FUZZ_CHECK(total <= size);
	}
	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(rc == 0 || line >= 0);
	nd_jdoc_close(r);
	return 0;
}
