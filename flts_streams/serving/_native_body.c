/* Native parser for the usual /predict body (see flts_streams/serving/native_body.py for the contract).
 *
 * parse(body: bytes) -> None | (identifier, index_col, inference_length, data)
 *   data: None, or (num_names, values, time_names, times, steps, rows): values the numeric columns
 *   row-major as float64 bytes; times the timestamp columns one after the other as int64 ns bytes;
 *   steps each timestamp column's step in ns when it rises by one step throughout, else 0.
 *
 * It accepts a strict subset of JSON: one object with only the keys identifier, data, index_col and
 * inference_length (each at most once); data an object of non-empty, equal-length arrays, each all
 * JSON numbers (-> float64) or all ISO-8601 timestamps "YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]]"
 * without a zone (-> int64 ns since the epoch). Strings must have no escapes. Anything else (and
 * any number that would not be finite) returns None: the Python path then parses the body and names
 * what is wrong. Nothing here raises for bad input; only MemoryError escapes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <stdint.h>
#include <string.h>

#define MAX_COLUMNS 256
#define MAX_NUMBER_CHARS 64
#define FAST_DIGITS 15  /* mantissas below 10^15 < 2^53 are exact doubles */
#define YEAR_MIN 1678   /* datetime64[ns] spans 1677-09-21 .. 2262-04-11: whole years inside it */
#define YEAR_MAX 2261

#define IS_DIGIT(ch) ((unsigned char)((ch) - '0') < 10)

typedef struct {
    const char *p;    /* inside a bytes object: *end is its terminating NUL */
    const char *end;
} Cur;

typedef struct {
    const char *start;
    Py_ssize_t len;
} Span;

typedef struct {
    char *cells;       /* 8-byte cells, column after column */
    Py_ssize_t used;   /* cells written */
    Py_ssize_t cap;    /* cells allocated */
    Span names[MAX_COLUMNS];
    char kinds[MAX_COLUMNS];
    int ncols;
    Py_ssize_t rows;
} Columns;

#if defined(__x86_64__) && LDBL_MANT_DIG == 64
#define EXTENDED_PATH 1  /* x87 long double: a 64-bit significand */
static const long double POW10L[] = {1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L, 1e10L, 1e11L, 1e12L, 1e13L,
                                     1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L,
                                     1e26L, 1e27L};

/* m * 10^exp10 (|exp10| <= 27, m < 2^63) rounded once to 64 bits, then to 53; 0 when that second
 * rounding might differ from rounding the exact value (the 64-bit result within 1 unit of a 53-bit
 * midpoint), so the caller takes the slow, correctly rounded path. Every operand is exact: m fits
 * the significand and 10^k = 2^k * 5^k with 5^27 < 2^64. */
static int extended(uint64_t m, int exp10, double *out) {
    long double q = (long double)m;
    q = exp10 >= 0 ? q * POW10L[exp10] : q / POW10L[-exp10];
    uint64_t significand;
    memcpy(&significand, &q, sizeof significand);  /* x87 layout: the 64-bit significand comes first */
    uint64_t low = significand & 0x7FF;  /* the 11 bits that rounding to a double drops */
    if (low >= 0x3FF && low <= 0x401) return 0;
    *out = (double)q;
    return 1;
}
#endif

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static void skip_ws(Cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) c->p++;
}

static int eat(Cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int peek(Cur *c, char ch) {
    skip_ws(c);
    return c->p < c->end && *c->p == ch;
}

/* A string without escapes or control characters; the span excludes the quotes. */
static int string_span(Cur *c, Span *out) {
    if (!eat(c, '"')) return 0;
    const char *s = c->p;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '\\' || ch < 0x20) return 0;
        c->p++;
    }
    if (c->p >= c->end) return 0;
    out->start = s;
    out->len = c->p - s;
    c->p++;
    return 1;
}

static int literal(Cur *c, const char *word) {
    size_t n = strlen(word);
    skip_ws(c);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* A str from a span, or NULL with no exception set when the bytes are not UTF-8. */
static PyObject *span_str(Span s) {
    PyObject *out = PyUnicode_DecodeUTF8(s.start, s.len, "strict");
    if (out == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
    return out;
}

static int span_is(Span s, const char *word) {
    return (size_t)s.len == strlen(word) && memcmp(s.start, word, s.len) == 0;
}

/* A JSON number to a finite double. Returns 1 on success, 0 to give up, -1 on a Python error. */
static int number(Cur *c, double *out) {
    skip_ws(c);
    /* No end checks below: the bytes object's terminating NUL is not a digit, '.', 'e' or sign. */
    const char *s = c->p, *p = c->p;
    int neg = 0, is_float = 0, nd = 0, scale = 0, exp_val = 0, exp_neg = 0;
    uint64_t m = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (!IS_DIGIT(*p)) return 0;
    if (*p == '0') {
        p++;
    } else {
        for (; IS_DIGIT(*p); p++, nd++)
            if (nd < 19) m = m * 10 + (uint64_t)(*p - '0');
    }
    if (*p == '.') {
        is_float = 1;
        p++;
        if (!IS_DIGIT(*p)) return 0;
        if (m == 0)
            for (; *p == '0'; p++) scale++;  /* leading zeros of the fraction: no significant digit yet */
        for (; IS_DIGIT(*p); p++, nd++, scale++)
            if (nd < 19) m = m * 10 + (uint64_t)(*p - '0');
    }
    if (*p == 'e' || *p == 'E') {
        is_float = 1;
        p++;
        if (*p == '+' || *p == '-') exp_neg = *p++ == '-';
        if (!IS_DIGIT(*p)) return 0;
        for (; IS_DIGIT(*p); p++)
            if (exp_val < 100000) exp_val = exp_val * 10 + (*p - '0');
    }
    if (p - s > MAX_NUMBER_CHARS) return 0;
    c->p = p;
    if (m == 0) {
        /* orjson reads "-0" as the int 0 (-> 0.0) but "-0.0" and "-0e1" as the float -0.0 */
        *out = (neg && is_float) ? -0.0 : 0.0;
        return 1;
    }
    int exp10 = (exp_neg ? -exp_val : exp_val) - scale;
    if (nd <= FAST_DIGITS && exp10 >= -22 && exp10 <= 22) {
        /* Clinger's fast path: an exact mantissa times or over an exact power of ten, one rounding */
        double v = (double)m;
        v = exp10 >= 0 ? v * POW10[exp10] : v / POW10[-exp10];
        *out = neg ? -v : v;
        return 1;
    }
#ifdef EXTENDED_PATH
    if (nd <= 18 && exp10 >= -27 && exp10 <= 27) {
        double v;
        if (extended(m, exp10, &v)) {
            *out = neg ? -v : v;
            return 1;
        }
    }
#endif
    if (!is_float && nd <= 19) {  /* integers up to 19 digits: one correctly rounded conversion */
        double v = (double)m;
        *out = neg ? -v : v;
        return 1;
    }
    char buf[MAX_NUMBER_CHARS + 1];
    memcpy(buf, s, (size_t)(p - s));
    buf[p - s] = '\0';
    char *stop = NULL;
    double v = PyOS_string_to_double(buf, &stop, NULL);  /* correctly rounded, locale-independent */
    if (v == -1.0 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) return -1;
        PyErr_Clear();
        return 0;
    }
    if (stop != buf + (p - s) || v - v != 0.0) return 0;  /* not all consumed, or infinite */
    *out = v;
    return 1;
}

static int digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
    /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m) {
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* "YYYY-MM-DD[( |T)HH:MM[:SS[.fraction]]]" to ns since the epoch; 0 when it is anything else. */
static int timestamp(Span s, int64_t *out) {
    const char *p = s.start;
    Py_ssize_t n = s.len;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac_ns = 0;
    if (n < 10 || !digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' || !digits(p + 8, 2, &d))
        return 0;
    if (y < YEAR_MIN || y > YEAR_MAX || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return 0;
    if (n > 10) {
        if ((p[10] != ' ' && p[10] != 'T') || n < 16 || !digits(p + 11, 2, &h) || p[13] != ':' || !digits(p + 14, 2, &mi))
            return 0;
        if (n > 16) {
            if (n < 19 || p[16] != ':' || !digits(p + 17, 2, &sec)) return 0;
            if (n > 19) {
                Py_ssize_t nf = n - 20;
                if (p[19] != '.' || nf < 1 || nf > 9) return 0;
                int64_t f = 0;
                for (Py_ssize_t i = 0; i < 9; i++) {
                    int dig = 0;
                    if (i < nf) {
                        if (p[20 + i] < '0' || p[20 + i] > '9') return 0;
                        dig = p[20 + i] - '0';
                    }
                    f = f * 10 + dig;
                }
                frac_ns = f;
            }
        }
        if (h > 23 || mi > 59 || sec > 59) return 0;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    *out = secs * 1000000000LL + frac_ns;
    return 1;
}

static int push_cell(Columns *cols, const void *cell) {
    if (cols->used == cols->cap) {
        Py_ssize_t cap = cols->cap ? cols->cap * 2 : 512;
        char *grown = PyMem_Realloc(cols->cells, (size_t)cap * 8);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        cols->cells = grown;
        cols->cap = cap;
    }
    memcpy(cols->cells + cols->used * 8, cell, 8);
    cols->used++;
    return 1;
}

/* One array of numbers or of timestamps. 1 ok, 0 give up, -1 Python error. */
static int column(Cur *c, Columns *cols) {
    if (!eat(c, '[')) return 0;
    char kind = peek(c, '"') ? 't' : 'f';
    Py_ssize_t rows = 0;
    if (peek(c, ']')) return 0;  /* empty columns: the Python path explains */
    do {
        int ok;
        if (kind == 't') {
            Span s;
            int64_t ns;
            ok = string_span(c, &s) && timestamp(s, &ns) ? push_cell(cols, &ns) : 0;
        } else {
            double v;
            ok = number(c, &v);
            if (ok == 1) ok = push_cell(cols, &v);
        }
        if (ok != 1) return ok;
        rows++;
    } while (eat(c, ','));
    if (!eat(c, ']')) return 0;
    if (cols->ncols > 0 && rows != cols->rows) return 0;
    cols->rows = rows;
    cols->kinds[cols->ncols] = kind;
    return 1;
}

static int known_name(const Columns *cols, Span s) {
    for (int i = 0; i < cols->ncols; i++)
        if (cols->names[i].len == s.len && memcmp(cols->names[i].start, s.start, s.len) == 0) return 1;
    return 0;
}

/* The data object. 1 ok, 0 give up, -1 Python error. */
static int data_object(Cur *c, Columns *cols) {
    if (!eat(c, '{')) return 0;
    if (eat(c, '}')) return 1;
    do {
        Span name;
        if (cols->ncols == MAX_COLUMNS || !string_span(c, &name) || known_name(cols, name) || !eat(c, ':')) return 0;
        int ok = column(c, cols);
        if (ok != 1) return ok;
        cols->names[cols->ncols++] = name;
    } while (eat(c, ','));
    return eat(c, '}');
}

/* A string or null into *out (a new reference or Py_None). 1 ok, 0 give up, -1 Python error. */
static int string_or_null(Cur *c, PyObject **out) {
    if (literal(c, "null")) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    Span s;
    if (!string_span(c, &s)) return 0;
    *out = span_str(s);
    if (*out == NULL) return PyErr_Occurred() ? -1 : 0;
    return 1;
}

/* An integer token (no fraction or exponent) or null. 1 ok, 0 give up, -1 Python error. */
static int int_or_null(Cur *c, PyObject **out) {
    if (literal(c, "null")) {
        *out = Py_NewRef(Py_None);
        return 1;
    }
    skip_ws(c);
    const char *s = c->p;
    int neg = c->p < c->end && *c->p == '-';
    const char *p = s + neg;
    long long v = 0;
    int nd = 0;
    while (p < c->end && *p >= '0' && *p <= '9') {
        if (++nd > 15) return 0; /* checked before accumulating: 16+ digits could overflow v (UB; UBSan found it) */
        v = v * 10 + (*p - '0');
        p++;
    }
    if (nd == 0 || (nd > 1 && s[neg] == '0')) return 0;
    if (p < c->end && (*p == '.' || *p == 'e' || *p == 'E')) return 0;
    c->p = p;
    *out = PyLong_FromLongLong(neg ? -v : v);
    return *out ? 1 : -1;
}

/* A tuple of the column names of one kind, in body order; NULL with no exception when a name is not UTF-8. */
static PyObject *names_of(const Columns *cols, char kind, Py_ssize_t n) {
    PyObject *names = PyTuple_New(n);
    if (names == NULL) return NULL;
    for (int i = 0, j = 0; i < cols->ncols; i++) {
        if (cols->kinds[i] != kind) continue;
        PyObject *name = span_str(cols->names[i]);
        if (name == NULL) {
            Py_DECREF(names);
            return NULL;
        }
        PyTuple_SET_ITEM(names, j++, name);
    }
    return names;
}

/* The common step of a timestamp column in ns, or 0 unless it is strictly increasing by one step. */
static long long regular_step(const int64_t *ts, Py_ssize_t rows) {
    if (rows < 2) return 0;
    int64_t step;
    if (__builtin_sub_overflow(ts[1], ts[0], &step) || step <= 0) return 0;
    for (Py_ssize_t r = 2; r < rows; r++) {
        int64_t d;
        if (__builtin_sub_overflow(ts[r], ts[r - 1], &d) || d != step) return 0;
    }
    return (long long)step;
}

/* (num_names, values row-major, time_names, times column after column, steps, rows). */
static PyObject *build_data(const Columns *cols) {
    Py_ssize_t rows = cols->rows, nf = 0, nt = 0;
    for (int i = 0; i < cols->ncols; i++) nf += cols->kinds[i] == 'f';
    nt = cols->ncols - nf;
    PyObject *num_names = names_of(cols, 'f', nf), *time_names = NULL, *values = NULL, *times = NULL, *steps = NULL;
    if (num_names == NULL || (time_names = names_of(cols, 't', nt)) == NULL) goto fail;
    values = PyBytes_FromStringAndSize(NULL, nf * rows * 8);
    times = PyBytes_FromStringAndSize(NULL, nt * rows * 8);
    steps = PyTuple_New(nt);
    if (values == NULL || times == NULL || steps == NULL) goto fail;
    double *v = (double *)PyBytes_AS_STRING(values);
    int64_t *t = (int64_t *)PyBytes_AS_STRING(times);
    for (int i = 0, jf = 0, jt = 0; i < cols->ncols; i++) {
        const char *col = cols->cells + (Py_ssize_t)i * rows * 8;
        if (cols->kinds[i] == 'f') {
            for (Py_ssize_t r = 0; r < rows; r++) memcpy(v + r * nf + jf, col + r * 8, 8);  /* row-major, like the frame */
            jf++;
        } else {
            memcpy(t + jt * rows, col, (size_t)rows * 8);
            PyObject *step = PyLong_FromLongLong(regular_step(t + jt * rows, rows));
            if (step == NULL) goto fail;
            PyTuple_SET_ITEM(steps, jt++, step);
        }
    }
    return Py_BuildValue("(NNNNNn)", num_names, values, time_names, times, steps, rows);
fail:
    Py_XDECREF(num_names);
    Py_XDECREF(time_names);
    Py_XDECREF(values);
    Py_XDECREF(times);
    Py_XDECREF(steps);
    return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
}

static PyObject *build(const Columns *cols, PyObject *fields[3], int has_data) {
    PyObject *data = has_data ? build_data(cols) : Py_NewRef(Py_None);
    if (data == NULL) return NULL;
    if (has_data && data == Py_None) return data;  /* a column name is not UTF-8: give up */
    return Py_BuildValue("(OOON)", fields[0], fields[1], fields[2], data);
}

static int top_field(Cur *c, Span key, Columns *cols, PyObject *fields[3], int seen[4], int *has_data) {
    static const char *keys[] = {"identifier", "index_col", "inference_length", "data"};
    for (int k = 0; k < 4; k++) {
        if (!span_is(key, keys[k])) continue;
        if (seen[k]) return 0;  /* duplicate keys: orjson keeps the last; let Python decide */
        seen[k] = 1;
        if (k < 2) return string_or_null(c, &fields[k]);
        if (k == 2) return int_or_null(c, &fields[2]);
        if (literal(c, "null")) return 1;
        *has_data = 1;
        return data_object(c, cols);
    }
    return 0;  /* unknown keys: the schema ignores them, the Python path handles that */
}

static PyObject *parse(PyObject *module, PyObject *arg) {
    if (!PyBytes_Check(arg)) {  /* bytes only: the number parser relies on the terminating NUL */
        PyErr_Format(PyExc_TypeError, "parse() takes bytes, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Cur c = {PyBytes_AS_STRING(arg), PyBytes_AS_STRING(arg) + PyBytes_GET_SIZE(arg)};
    Columns *cols = PyMem_Calloc(1, sizeof(Columns));
    PyObject *fields[3] = {NULL, NULL, NULL}, *result = NULL;
    int seen[4] = {0, 0, 0, 0}, has_data = 0, ok = 1;
    if (cols == NULL) return PyErr_NoMemory();
    if (!eat(&c, '{')) ok = 0;
    if (ok == 1 && !eat(&c, '}')) {
        do {
            Span key;
            ok = string_span(&c, &key) && eat(&c, ':') ? top_field(&c, key, cols, fields, seen, &has_data) : 0;
        } while (ok == 1 && eat(&c, ','));
        if (ok == 1 && !eat(&c, '}')) ok = 0;
    }
    skip_ws(&c);
    if (ok == 1 && c.p != c.end) ok = 0;  /* trailing bytes */
    if (has_data && cols->ncols == 0) has_data = 0;  /* "data": {} is no data, as in the schema path */
    if (ok == 1) {
        for (int k = 0; k < 3; k++)
            if (fields[k] == NULL) fields[k] = Py_NewRef(Py_None);
        result = build(cols, fields, has_data);
    } else if (ok == 0) {
        result = Py_NewRef(Py_None);
    }
    for (int k = 0; k < 3; k++) Py_XDECREF(fields[k]);
    PyMem_Free(cols->cells);
    PyMem_Free(cols);
    return result;
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_O, "The usual /predict body as (identifier, index_col, inference_length, data); None otherwise."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native_body", "Native parser for the usual /predict body.", 0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native_body(void) { return PyModule_Create(&module); }
