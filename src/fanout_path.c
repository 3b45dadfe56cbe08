/*
 * Dot paths into JSON documents.
 */

#include <stdlib.h>
#include <string.h>

#include "fanout_path.h"


int
fanout_path_check(const char *path, size_t len)
{
    size_t  i, seg;

    if (len == 0) {
        return -1;
    }

    seg = 0;

    for (i = 0; i < len; i++) {
        if (path[i] == '.') {
            if (seg == 0) {
                return -1;
            }

            seg = 0;
            continue;
        }

        if ((unsigned char) path[i] <= ' ' || path[i] == 0x7f) {
            return -1;
        }

        seg++;
    }

    return seg == 0 ? -1 : 0;
}


static int
fanout_path_index(const char *s, size_t n, size_t *index)
{
    size_t  i, v;

    if (n == 0 || n > 9) {
        return -1;
    }

    v = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        v = v * 10 + (size_t) (s[i] - '0');
    }

    *index = v;

    return 0;
}


/* json_object_getn() is jansson >= 2.14 only; we support 2.10 */

static json_t *
fanout_path_key(json_t *object, const char *key, size_t n)
{
    char    stack[128], *buf;
    json_t  *value;

    buf = (n < sizeof(stack)) ? stack : malloc(n + 1);
    if (buf == NULL) {
        return NULL;
    }

    memcpy(buf, key, n);
    buf[n] = '\0';

    value = json_object_get(object, buf);

    if (buf != stack) {
        free(buf);
    }

    return value;
}


json_t *
fanout_path_get(json_t *root, const char *path, size_t len)
{
    size_t       n, index;
    json_t      *node;
    const char  *p, *end, *dot;

    node = root;
    p = path;
    end = path + len;

    while (node != NULL && p < end) {
        dot = memchr(p, '.', (size_t) (end - p));
        n = (size_t) ((dot ? dot : end) - p);

        if (json_is_array(node)) {
            if (fanout_path_index(p, n, &index) != 0) {
                return NULL;
            }

            node = json_array_get(node, index);

        } else if (json_is_object(node)) {
            node = fanout_path_key(node, p, n);

        } else {
            return NULL;
        }

        p += n + 1;
    }

    return node;
}
