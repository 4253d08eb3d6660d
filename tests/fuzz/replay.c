/*
 * replay.c: runs a fuzz target's inputs through its entry point in an
 * ordinary build, as a test of `make check`.  Linked with one target
 * (FUZZ_TARGET names it), it replays every file of
 * tests/fuzz/corpus/<target>/ (seed inputs) and tests/fuzz/crashes/<target>/
 * (each input that once crashed the target, kept after the fix), or the
 * files and directories given as arguments.  A crash, an abort() or a
 * sanitizer report fails the test; so does an empty corpus, which would
 * make the test pass without testing anything.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
replay_file(const char *path)
{
	FILE		*f;
	uint8_t		*buf;
	long		 len;

	if ((f = fopen(path, "rb")) == NULL || fseek(f, 0, SEEK_END) == -1 ||
	    (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) == -1) {
		perror(path);
		return (-1);
	}
	/* One byte more, so that an empty input is a valid pointer too. */
	if ((buf = malloc((size_t)len + 1)) == NULL ||
	    fread(buf, 1, (size_t)len, f) != (size_t)len) {
		perror(path);
		exit(1);
	}
	fclose(f);
	LLVMFuzzerTestOneInput(buf, (size_t)len);
	free(buf);
	return (0);
}

static int
namecmp(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* Every regular file of dir, in name order; the count, or -1. */
static long
replay_dir(const char *dir, int must_exist)
{
	struct dirent	*de;
	struct stat	 st;
	DIR		*d;
	char		**names = NULL, path[PATH_MAX];
	size_t		 n = 0, i;
	long		 done = 0;

	if ((d = opendir(dir)) == NULL) {
		if (must_exist)
			perror(dir);
		return (must_exist ? -1 : 0);
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((names = realloc(names, (n + 1) * sizeof(*names))) == NULL ||
		    (names[n++] = strdup(de->d_name)) == NULL)
			exit(1);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), namecmp);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) == -1)
				done = -1;
			else if (done >= 0)
				done++;
		}
		free(names[i]);
	}
	free(names);
	return (done);
}

int
main(int argc, char *argv[])
{
	const char	*src = getenv("NT_SRCDIR");
	char		 corpus[PATH_MAX], crashes[PATH_MAX];
	struct stat	 st;
	long		 nc, nx = 0;
	int		 i;

	if (argc > 1) {
		for (i = 1; i < argc; i++) {
			if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
				if (replay_dir(argv[i], 1) == -1)
					return (1);
			} else if (replay_file(argv[i]) == -1)
				return (1);
		}
		printf("%s: replayed %d inputs\n", FUZZ_TARGET, argc - 1);
		return (0);
	}
	if (src == NULL)
		src = ".";
	snprintf(corpus, sizeof(corpus), "%s/tests/fuzz/corpus/%s", src,
	    FUZZ_TARGET);
	snprintf(crashes, sizeof(crashes), "%s/tests/fuzz/crashes/%s", src,
	    FUZZ_TARGET);
	if ((nc = replay_dir(corpus, 1)) <= 0) {
		printf("FAIL: %s: no corpus to replay in %s\n", FUZZ_TARGET,
		    corpus);
		return (1);
	}
	if ((nx = replay_dir(crashes, 0)) < 0) {
		printf("FAIL: %s: cannot replay %s\n", FUZZ_TARGET, crashes);
		return (1);
	}
	printf("PASS: %s: replayed %ld corpus inputs and %ld kept crash "
	    "inputs\n", FUZZ_TARGET, nc, nx);
	return (0);
}
