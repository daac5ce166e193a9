/* Native splice of a forecast's records JSON (see Forecast.records_json_with in forecast.py for the contract).
 *
 * splice(dumped: bytes, stamps: list[str], key: bytes, names: tuple[bytes, ...]) -> list[bytes]
 *   dumped: orjson's dump of a float64 array of shape (groups * len(names), n), "[[v,...],[...]]";
 *   stamps: the n timestamp strings (ASCII, no character JSON must escape); key and names: the time
 *   key and the target names, each JSON-encoded already (quotes included).
 *   Returns one bytes per group g: [{key:"stamp_i",names[0]:cell(g*T+0, i),...},...] for i < n.
 *
 * The cells are copied as orjson wrote them (numbers, or null for a non-finite value), so the result
 * is byte for byte orjson.dumps of the records (tests/test_flts_streams/test_forecasting/test_records_json.py
 * and test_forecast.py).
 * A number never holds ',' or ']', so cells split cleanly. Input of another shape raises ValueError.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    const char *start;
    Py_ssize_t len;
} Span;

/* The cells of "[[a,b],[c,d]]" in order into cells[0..count); 0 unless exactly count cells in rows of n. */
static int split_cells(const char *p, Py_ssize_t size, Span *cells, Py_ssize_t count, Py_ssize_t n) {
    if (size < 4 || p[0] != '[' || p[1] != '[' || p[size - 2] != ']' || p[size - 1] != ']') return 0;
    const char *end = p + size - 2;  /* the closing "]]" */
    const char *q = p + 2;
    Py_ssize_t k = 0;
    while (q < end) {
        const char *s = q;
        while (q < end && *q != ',' && *q != ']') q++;
        if (q == s || k >= count) return 0;
        cells[k].start = s;
        cells[k].len = q - s;
        k++;
        if (q == end) break;
        if (*q == ',') {
            if (k % n == 0) return 0;  /* a row longer than n */
            q++;
        } else {                        /* "],[": the next row */
            if (k % n != 0 || end - q < 3 || q[1] != ',' || q[2] != '[') return 0;
            q += 3;
        }
    }
    return k == count;
}

static PyObject *splice(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyList_Check(args[1]) || !PyBytes_Check(args[2]) ||
        !PyTuple_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "splice(dumped: bytes, stamps: list[str], key: bytes, names: tuple[bytes])");
        return NULL;
    }
    PyObject *stamps = args[1], *names = args[3];
    Py_ssize_t n = PyList_GET_SIZE(stamps), targets = PyTuple_GET_SIZE(names);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (n < 1 || targets < 1) {
        PyErr_SetString(PyExc_ValueError, "splice needs at least one timestamp and one target");
        return NULL;
    }
    /* Every cell but the last is followed by one comma (directly, or in "],["); numbers hold none. */
    Py_ssize_t count = 1;
    for (const char *c = PyBytes_AS_STRING(args[0]), *e = c + size; c < e; c++) count += *c == ',';
    if (count < n * targets || count % (n * targets) != 0) {
        PyErr_SetString(PyExc_ValueError, "the dump does not hold whole groups of n cells per target");
        return NULL;
    }
    Py_ssize_t groups = count / (n * targets);
    Span *cells = PyMem_Malloc(sizeof(Span) * count);
    Span *ts = PyMem_Malloc(sizeof(Span) * n);
    PyObject *out = NULL;
    if (cells == NULL || ts == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (!split_cells(PyBytes_AS_STRING(args[0]), size, cells, count, n)) {
        PyErr_SetString(PyExc_ValueError, "the dump is not a 2-d array of numbers");
        goto done;
    }
    Py_ssize_t stamp_bytes = 0, name_bytes = 0, key_len = PyBytes_GET_SIZE(args[2]);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyList_GET_ITEM(stamps, i);
        if (!PyUnicode_Check(s) || !PyUnicode_IS_ASCII(s)) {
            PyErr_SetString(PyExc_ValueError, "timestamps must be ASCII str");
            goto done;
        }
        ts[i].start = (const char *)PyUnicode_DATA(s);
        ts[i].len = PyUnicode_GET_LENGTH(s);
        stamp_bytes += ts[i].len;
    }
    for (Py_ssize_t j = 0; j < targets; j++) {
        if (!PyBytes_Check(PyTuple_GET_ITEM(names, j))) {
            PyErr_SetString(PyExc_TypeError, "names must be bytes");
            goto done;
        }
        name_bytes += PyBytes_GET_SIZE(PyTuple_GET_ITEM(names, j));
    }
    out = PyList_New(groups);
    if (out == NULL) goto done;
    const char *key = PyBytes_AS_STRING(args[2]);
    for (Py_ssize_t g = 0; g < groups; g++) {
        const Span *group = cells + g * targets * n;
        /* [ ] and n-1 commas; per row { key :" stamp " } and per target , name : cell */
        Py_ssize_t total = 2 + (n - 1) + n * (key_len + 5 + targets * 2 + name_bytes) + stamp_bytes;
        for (Py_ssize_t k = 0; k < targets * n; k++) total += group[k].len;
        PyObject *b = PyBytes_FromStringAndSize(NULL, total);
        if (b == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        char *w = PyBytes_AS_STRING(b);
#define PUT(src, len)              \
    do {                           \
        memcpy(w, (src), (len));   \
        w += (len);                \
    } while (0)
        *w++ = '[';
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i) *w++ = ',';
            *w++ = '{';
            PUT(key, key_len);
            PUT(":\"", 2);
            PUT(ts[i].start, ts[i].len);
            *w++ = '"';
            for (Py_ssize_t j = 0; j < targets; j++) {
                PyObject *name = PyTuple_GET_ITEM(names, j);
                *w++ = ',';
                PUT(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name));
                *w++ = ':';
                PUT(group[j * n + i].start, group[j * n + i].len);
            }
            *w++ = '}';
        }
        *w++ = ']';
#undef PUT
        assert(w == PyBytes_AS_STRING(b) + total);
        PyList_SET_ITEM(out, g, b);
    }
done:
    PyMem_Free(cells);
    PyMem_Free(ts);
    return out;
}

static PyMethodDef methods[] = {
    {"splice", (PyCFunction)(void (*)(void))splice, METH_FASTCALL,
     "A forecast's records JSON per group, from orjson's dump of its values and the timestamp strings."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_records_json", "Native splice of a forecast's records JSON.", 0, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__records_json(void) { return PyModule_Create(&module); }
