/*
 * bench_report.c: what a measurement found, kept as rows (a key for the
 * JSON, a label and unit for people) and printed once at the end, either
 * as a table or as one JSON object with the machine it ran on.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "nodetalk.h"
#include "log.h"
#include "bench.h"

struct report_row {
	char		*key;
	char		*label;
	char		*unit;
	int		 decimals;
	double		 v;
	char		*none;		/* not measured: why */
};

struct bench_report {
	char			*command;
	cJSON			*params;
	struct report_row	*rows;
	size_t			 nrows;
	char			**notes;
	size_t			 nnotes;
};

struct bench_report *
bench_report_new(const char *command)
{
	struct bench_report	*r = xcalloc(1, sizeof(*r));

	r->command = xstrdup(command);
	if ((r->params = cJSON_CreateObject()) == NULL)
		fatalx("cJSON_CreateObject failed");
	return (r);
}

void
bench_report_free(struct bench_report *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->nrows; i++) {
		free(r->rows[i].key);
		free(r->rows[i].label);
		free(r->rows[i].unit);
		free(r->rows[i].none);
	}
	for (i = 0; i < r->nnotes; i++)
		free(r->notes[i]);
	free(r->rows);
	free(r->notes);
	cJSON_Delete(r->params);
	free(r->command);
	free(r);
}

void
bench_report_param(struct bench_report *r, const char *key, double v)
{
	cJSON_AddNumberToObject(r->params, key, v);
}

void
bench_report_param_str(struct bench_report *r, const char *key,
    const char *v)
{
	cJSON_AddStringToObject(r->params, key, v);
}

static struct report_row *
report_row(struct bench_report *r, const char *key, const char *label,
    const char *unit)
{
	struct report_row	*row;

	r->rows = xreallocarray(r->rows, r->nrows + 1, sizeof(*r->rows));
	row = &r->rows[r->nrows++];
	memset(row, 0, sizeof(*row));
	row->key = xstrdup(key);
	row->label = xstrdup(label);
	row->unit = xstrdup(unit != NULL ? unit : "");
	return (row);
}

void
bench_report_num(struct bench_report *r, const char *key, const char *label,
    const char *unit, int decimals, double v)
{
	struct report_row	*row = report_row(r, key, label, unit);

	row->decimals = decimals;
	row->v = v;
	if (!isfinite(v))
		row->none = xstrdup("no data");
}

void
bench_report_none(struct bench_report *r, const char *key, const char *label,
    const char *why)
{
	report_row(r, key, label, NULL)->none = xstrdup(why);
}

void
bench_report_note(struct bench_report *r, const char *note)
{
	r->notes = xreallocarray(r->notes, r->nnotes + 1, sizeof(*r->notes));
	r->notes[r->nnotes++] = xstrdup(note);
}

static int
report_cmp(const void *a, const void *b)
{
	double	x = *(const double *)a, y = *(const double *)b;

	return (x < y ? -1 : x > y);
}

/* The p-th percentile (nearest rank) of v, which it sorts; NAN if empty. */
double
bench_pct(double *v, size_t n, double p)
{
	size_t	rank;

	if (n == 0)
		return (NAN);
	qsort(v, n, sizeof(*v), report_cmp);
	rank = (size_t)ceil(p / 100.0 * (double)n);
	return (v[rank == 0 ? 0 : rank - 1]);
}

double
bench_median(double *v, size_t n)
{
	if (n == 0)
		return (NAN);
	qsort(v, n, sizeof(*v), report_cmp);
	if (n % 2 == 1)
		return (v[n / 2]);
	return ((v[n / 2 - 1] + v[n / 2]) / 2);
}

/* p50, p99, p99.9 and max of v (seconds), reported in milliseconds. */
void
bench_report_pcts(struct bench_report *r, const char *key, const char *label,
    double *v, size_t n)
{
	static const struct {
		const char	*suffix;
		const char	*name;
		double		 p;
	} pcts[] = {
		{ "p50", "p50", 50 }, { "p99", "p99", 99 },
		{ "p999", "p99.9", 99.9 }, { "max", "max", 100 }
	};
	char	k[128], l[256];
	size_t	i;

	for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
		snprintf(k, sizeof(k), "%s_%s_ms", key, pcts[i].suffix);
		snprintf(l, sizeof(l), "%s, %s", label, pcts[i].name);
		bench_report_num(r, k, l, "ms", 3,
		    bench_pct(v, n, pcts[i].p) * 1e3);
	}
}

/* Rounded as printed, so that the JSON carries no false digits. */
static double
report_round(double v, int decimals)
{
	double	s = pow(10, decimals);

	return (round(v * s) / s);
}

static cJSON *
report_machine(void)
{
	cJSON	*m = cJSON_CreateObject(), *a;
	char	 cpu[256], kernel[256];
	double	 load[3];
	int	 nproc, i;

	bench_proc_machine(&nproc, cpu, sizeof(cpu), kernel, sizeof(kernel));
	cJSON_AddNumberToObject(m, "nproc", nproc);
	cJSON_AddStringToObject(m, "cpu", cpu);
	cJSON_AddStringToObject(m, "kernel", kernel);
	/* how busy the machine was: a shared one is noisy */
	if (getloadavg(load, 3) == 3) {
		a = cJSON_AddArrayToObject(m, "loadavg");
		for (i = 0; i < 3; i++)
			cJSON_AddItemToArray(a,
			    cJSON_CreateNumber(report_round(load[i], 2)));
	}
	return (m);
}

static void
report_json(struct bench_report *r, int ok)
{
	cJSON	*o = cJSON_CreateObject(), *res, *notes;
	char	*s;
	size_t	 i;

	cJSON_AddStringToObject(o, "tool", "nodetalk-bench");
	cJSON_AddStringToObject(o, "version", PACKAGE_VERSION);
	cJSON_AddStringToObject(o, "command", r->command);
	cJSON_AddBoolToObject(o, "ok", ok);
	cJSON_AddNumberToObject(o, "time", (double)time(NULL));
	cJSON_AddItemToObject(o, "machine", report_machine());
	cJSON_AddItemToObject(o, "params", cJSON_Duplicate(r->params, 1));
	res = cJSON_AddObjectToObject(o, "results");
	for (i = 0; i < r->nrows; i++) {
		if (r->rows[i].none != NULL)
			cJSON_AddNullToObject(res, r->rows[i].key);
		else
			cJSON_AddNumberToObject(res, r->rows[i].key,
			    report_round(r->rows[i].v, r->rows[i].decimals));
	}
	notes = cJSON_AddArrayToObject(o, "notes");
	for (i = 0; i < r->nnotes; i++)
		cJSON_AddItemToArray(notes, cJSON_CreateString(r->notes[i]));
	if ((s = cJSON_Print(o)) == NULL)
		fatalx("cJSON_Print failed");
	printf("%s\n", s);
	free(s);
	cJSON_Delete(o);
}

static void
report_params(struct bench_report *r)
{
	const cJSON	*it;

	printf("  with");
	cJSON_ArrayForEach(it, r->params) {
		if (cJSON_IsString(it))
			printf(" %s=%s", it->string, it->valuestring);
		else
			printf(" %s=%g", it->string, it->valuedouble);
	}
	printf("\n");
}

static void
report_table(struct bench_report *r, int ok)
{
	const struct report_row	*row;
	char			 val[64];
	size_t			 i;

	printf("nodetalk-bench %s: %s\n", r->command, ok ? "ok" : "FAILED");
	report_params(r);
	for (i = 0; i < r->nrows; i++) {
		row = &r->rows[i];
		if (row->none != NULL) {
			printf("  %-46s %12s  (%s)\n", row->label, "-",
			    row->none);
			continue;
		}
		snprintf(val, sizeof(val), "%.*f", row->decimals, row->v);
		printf("  %-46s %12s %s\n", row->label, val, row->unit);
	}
	for (i = 0; i < r->nnotes; i++)
		printf("  note: %s\n", r->notes[i]);
}

void
bench_report_print(struct bench_report *r, int json, int ok)
{
	if (json)
		report_json(r, ok);
	else
		report_table(r, ok);
	fflush(stdout);
}
