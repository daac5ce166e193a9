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

#ifdef __SIZEOF_INT128__  /* GCC and Clang on 64-bit targets; elsewhere such numbers take the slow path */
#define EISEL_LEMIRE 1
#define EL_MIN_EXP10 (-40)  /* the range of POW10_128: the body's numbers are within it, others take the slow path */
#define EL_MAX_EXP10 40

/* 10^e for e in [EL_MIN_EXP10, EL_MAX_EXP10]: its 128-bit significand (top bit set), rounded down, as {high, low}.
 * Generated with Python's exact integers; tests/test_flts_streams/test_serving/test_native_body.py
 * regenerates it and compares it with this file. */
static const uint64_t POW10_128[][2] = {
    {0x8B61313BBABCE2C6ULL, 0x2323AC4B3B3DA015ULL}, /* 1e-40 */
    {0xAE397D8AA96C1B77ULL, 0xABEC975E0A0D081AULL}, /* 1e-39 */
    {0xD9C7DCED53C72255ULL, 0x96E7BD358C904A21ULL}, /* 1e-38 */
    {0x881CEA14545C7575ULL, 0x7E50D64177DA2E54ULL}, /* 1e-37 */
    {0xAA242499697392D2ULL, 0xDDE50BD1D5D0B9E9ULL}, /* 1e-36 */
    {0xD4AD2DBFC3D07787ULL, 0x955E4EC64B44E864ULL}, /* 1e-35 */
    {0x84EC3C97DA624AB4ULL, 0xBD5AF13BEF0B113EULL}, /* 1e-34 */
    {0xA6274BBDD0FADD61ULL, 0xECB1AD8AEACDD58EULL}, /* 1e-33 */
    {0xCFB11EAD453994BAULL, 0x67DE18EDA5814AF2ULL}, /* 1e-32 */
    {0x81CEB32C4B43FCF4ULL, 0x80EACF948770CED7ULL}, /* 1e-31 */
    {0xA2425FF75E14FC31ULL, 0xA1258379A94D028DULL}, /* 1e-30 */
    {0xCAD2F7F5359A3B3EULL, 0x096EE45813A04330ULL}, /* 1e-29 */
    {0xFD87B5F28300CA0DULL, 0x8BCA9D6E188853FCULL}, /* 1e-28 */
    {0x9E74D1B791E07E48ULL, 0x775EA264CF55347DULL}, /* 1e-27 */
    {0xC612062576589DDAULL, 0x95364AFE032A819DULL}, /* 1e-26 */
    {0xF79687AED3EEC551ULL, 0x3A83DDBD83F52204ULL}, /* 1e-25 */
    {0x9ABE14CD44753B52ULL, 0xC4926A9672793542ULL}, /* 1e-24 */
    {0xC16D9A0095928A27ULL, 0x75B7053C0F178293ULL}, /* 1e-23 */
    {0xF1C90080BAF72CB1ULL, 0x5324C68B12DD6338ULL}, /* 1e-22 */
    {0x971DA05074DA7BEEULL, 0xD3F6FC16EBCA5E03ULL}, /* 1e-21 */
    {0xBCE5086492111AEAULL, 0x88F4BB1CA6BCF584ULL}, /* 1e-20 */
    {0xEC1E4A7DB69561A5ULL, 0x2B31E9E3D06C32E5ULL}, /* 1e-19 */
    {0x9392EE8E921D5D07ULL, 0x3AFF322E62439FCFULL}, /* 1e-18 */
    {0xB877AA3236A4B449ULL, 0x09BEFEB9FAD487C2ULL}, /* 1e-17 */
    {0xE69594BEC44DE15BULL, 0x4C2EBE687989A9B3ULL}, /* 1e-16 */
    {0x901D7CF73AB0ACD9ULL, 0x0F9D37014BF60A10ULL}, /* 1e-15 */
    {0xB424DC35095CD80FULL, 0x538484C19EF38C94ULL}, /* 1e-14 */
    {0xE12E13424BB40E13ULL, 0x2865A5F206B06FB9ULL}, /* 1e-13 */
    {0x8CBCCC096F5088CBULL, 0xF93F87B7442E45D3ULL}, /* 1e-12 */
    {0xAFEBFF0BCB24AAFEULL, 0xF78F69A51539D748ULL}, /* 1e-11 */
    {0xDBE6FECEBDEDD5BEULL, 0xB573440E5A884D1BULL}, /* 1e-10 */
    {0x89705F4136B4A597ULL, 0x31680A88F8953030ULL}, /* 1e-9 */
    {0xABCC77118461CEFCULL, 0xFDC20D2B36BA7C3DULL}, /* 1e-8 */
    {0xD6BF94D5E57A42BCULL, 0x3D32907604691B4CULL}, /* 1e-7 */
    {0x8637BD05AF6C69B5ULL, 0xA63F9A49C2C1B10FULL}, /* 1e-6 */
    {0xA7C5AC471B478423ULL, 0x0FCF80DC33721D53ULL}, /* 1e-5 */
    {0xD1B71758E219652BULL, 0xD3C36113404EA4A8ULL}, /* 1e-4 */
    {0x83126E978D4FDF3BULL, 0x645A1CAC083126E9ULL}, /* 1e-3 */
    {0xA3D70A3D70A3D70AULL, 0x3D70A3D70A3D70A3ULL}, /* 1e-2 */
    {0xCCCCCCCCCCCCCCCCULL, 0xCCCCCCCCCCCCCCCCULL}, /* 1e-1 */
    {0x8000000000000000ULL, 0x0000000000000000ULL}, /* 1e0 */
    {0xA000000000000000ULL, 0x0000000000000000ULL}, /* 1e1 */
    {0xC800000000000000ULL, 0x0000000000000000ULL}, /* 1e2 */
    {0xFA00000000000000ULL, 0x0000000000000000ULL}, /* 1e3 */
    {0x9C40000000000000ULL, 0x0000000000000000ULL}, /* 1e4 */
    {0xC350000000000000ULL, 0x0000000000000000ULL}, /* 1e5 */
    {0xF424000000000000ULL, 0x0000000000000000ULL}, /* 1e6 */
    {0x9896800000000000ULL, 0x0000000000000000ULL}, /* 1e7 */
    {0xBEBC200000000000ULL, 0x0000000000000000ULL}, /* 1e8 */
    {0xEE6B280000000000ULL, 0x0000000000000000ULL}, /* 1e9 */
    {0x9502F90000000000ULL, 0x0000000000000000ULL}, /* 1e10 */
    {0xBA43B74000000000ULL, 0x0000000000000000ULL}, /* 1e11 */
    {0xE8D4A51000000000ULL, 0x0000000000000000ULL}, /* 1e12 */
    {0x9184E72A00000000ULL, 0x0000000000000000ULL}, /* 1e13 */
    {0xB5E620F480000000ULL, 0x0000000000000000ULL}, /* 1e14 */
    {0xE35FA931A0000000ULL, 0x0000000000000000ULL}, /* 1e15 */
    {0x8E1BC9BF04000000ULL, 0x0000000000000000ULL}, /* 1e16 */
    {0xB1A2BC2EC5000000ULL, 0x0000000000000000ULL}, /* 1e17 */
    {0xDE0B6B3A76400000ULL, 0x0000000000000000ULL}, /* 1e18 */
    {0x8AC7230489E80000ULL, 0x0000000000000000ULL}, /* 1e19 */
    {0xAD78EBC5AC620000ULL, 0x0000000000000000ULL}, /* 1e20 */
    {0xD8D726B7177A8000ULL, 0x0000000000000000ULL}, /* 1e21 */
    {0x878678326EAC9000ULL, 0x0000000000000000ULL}, /* 1e22 */
    {0xA968163F0A57B400ULL, 0x0000000000000000ULL}, /* 1e23 */
    {0xD3C21BCECCEDA100ULL, 0x0000000000000000ULL}, /* 1e24 */
    {0x84595161401484A0ULL, 0x0000000000000000ULL}, /* 1e25 */
    {0xA56FA5B99019A5C8ULL, 0x0000000000000000ULL}, /* 1e26 */
    {0xCECB8F27F4200F3AULL, 0x0000000000000000ULL}, /* 1e27 */
    {0x813F3978F8940984ULL, 0x4000000000000000ULL}, /* 1e28 */
    {0xA18F07D736B90BE5ULL, 0x5000000000000000ULL}, /* 1e29 */
    {0xC9F2C9CD04674EDEULL, 0xA400000000000000ULL}, /* 1e30 */
    {0xFC6F7C4045812296ULL, 0x4D00000000000000ULL}, /* 1e31 */
    {0x9DC5ADA82B70B59DULL, 0xF020000000000000ULL}, /* 1e32 */
    {0xC5371912364CE305ULL, 0x6C28000000000000ULL}, /* 1e33 */
    {0xF684DF56C3E01BC6ULL, 0xC732000000000000ULL}, /* 1e34 */
    {0x9A130B963A6C115CULL, 0x3C7F400000000000ULL}, /* 1e35 */
    {0xC097CE7BC90715B3ULL, 0x4B9F100000000000ULL}, /* 1e36 */
    {0xF0BDC21ABB48DB20ULL, 0x1E86D40000000000ULL}, /* 1e37 */
    {0x96769950B50D88F4ULL, 0x1314448000000000ULL}, /* 1e38 */
    {0xBC143FA4E250EB31ULL, 0x17D955A000000000ULL}, /* 1e39 */
    {0xEB194F8E1AE525FDULL, 0x5DCFAB0800000000ULL}, /* 1e40 */
};

/* m * 10^exp10 correctly rounded to a double (m > 0, exp10 in the table's range): the Eisel-Lemire algorithm
 * (Lemire, "Number Parsing at a Gigabyte per Second", 2021), as Go's strconv.eiselLemire64. Returns 0 when the
 * 128-bit product cannot decide the rounding (rare: the caller then takes the slow, correctly rounded path). */
static int eisel_lemire(uint64_t m, int exp10, double *out) {
    const uint64_t *pow = POW10_128[exp10 - EL_MIN_EXP10];
    int clz = __builtin_clzll(m);
    m <<= clz;
    /* floor(exp10 * log2(10)) + 64 + the bias - clz; 217706 / 2^16 ~ log2(10), exact over the table's range */
    int64_t exp2 = (int64_t)((217706 * exp10) >> 16) + 64 + 1023 - clz;
    __uint128_t x = (__uint128_t)m * pow[0];
    uint64_t hi = (uint64_t)(x >> 64), lo = (uint64_t)x;
    if ((hi & 0x1FF) == 0x1FF && lo + m < m) {  /* the bits below may carry into the kept ones: widen */
        __uint128_t y = (__uint128_t)m * pow[1];
        uint64_t y_hi = (uint64_t)(y >> 64), y_lo = (uint64_t)y;
        uint64_t merged_hi = hi, merged_lo = lo + y_hi;
        if (merged_lo < lo) merged_hi++;
        if ((merged_hi & 0x1FF) == 0x1FF && merged_lo + 1 == 0 && y_lo + m < m) return 0;
        hi = merged_hi;
        lo = merged_lo;
    }
    uint64_t msb = hi >> 63;
    uint64_t mantissa = hi >> (msb + 9);  /* 54 bits: one more than a double keeps, to round with */
    exp2 -= 1 ^ msb;
    if (lo == 0 && (hi & 0x1FF) == 0 && (mantissa & 3) == 1) return 0;  /* exactly half-way: undecided here */
    mantissa += mantissa & 1;
    mantissa >>= 1;
    if (mantissa >> 53) {  /* rounding carried into a new bit */
        mantissa >>= 1;
        exp2 += 1;
    }
    if (exp2 <= 0 || exp2 >= 0x7FF) return 0;  /* subnormal or infinite */
    uint64_t bits = ((uint64_t)exp2 << 52) | (mantissa & 0x000FFFFFFFFFFFFFULL);
    memcpy(out, &bits, sizeof bits);
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

/* Eight ASCII digits at once (SWAR, as in simdjson and fast_float): whether 8 bytes (little-endian: the first
 * digit in the lowest byte) are all digits, and their value. */
static inline int eight_digits(uint64_t v) {
    return ((v & 0xF0F0F0F0F0F0F0F0ULL) | (((v + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ==
           0x3333333333333333ULL;
}

static inline uint64_t eight_digits_value(uint64_t v) {
    v -= 0x3030303030303030ULL;
    v = (v * 10) + (v >> 8);  /* each byte pair's value in its low byte */
    return (((v & 0x000000FF000000FFULL) * 0x000F424000000064ULL) +
            (((v >> 16) & 0x000000FF000000FFULL) * 0x0000271000000001ULL)) >> 32;
}

/* The digits from p on: the first 19 significant ones accumulated into *m, every one counted in *nd. */
static inline const char *digit_run(const char *p, const char *end, uint64_t *m, int *nd) {
    uint64_t eight;
    while (*nd <= 11 && end - p >= 8 && (memcpy(&eight, p, 8), eight_digits(eight))) {  /* m stays below 10^19 */
        *m = *m * 100000000ULL + eight_digits_value(eight);
        *nd += 8;
        p += 8;
    }
    for (; IS_DIGIT(*p); p++, (*nd)++)
        if (*nd < 19) *m = *m * 10 + (uint64_t)(*p - '0');
    return p;
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
        p = digit_run(p, c->end, &m, &nd);
    }
    if (*p == '.') {
        is_float = 1;
        p++;
        if (!IS_DIGIT(*p)) return 0;
        if (m == 0)
            for (; *p == '0'; p++) scale++;  /* leading zeros of the fraction: no significant digit yet */
        const char *first = p;
        p = digit_run(p, c->end, &m, &nd);
        scale += (int)(p - first);
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
#ifdef EISEL_LEMIRE
    if (nd <= 19 && exp10 >= EL_MIN_EXP10 && exp10 <= EL_MAX_EXP10) {  /* every digit is in m */
        double v;
        if (eisel_lemire(m, exp10, &v)) {
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

static inline int push_cell(Columns *cols, const void *cell) {
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
