/*
 * Unit tests of fanout_path.c: dot paths into JSON.
 */

#include <stdlib.h>

#include "fanout_path.h"
#include "tap.h"


static int
check(const char *path)
{
    return fanout_path_check(path, strlen(path));
}


static json_t *
get(json_t *root, const char *path)
{
    return fanout_path_get(root, path, strlen(path));
}


int
main(void)
{
    char    *long_key;
    json_t  *doc, *v;

    ok(check("label") == 0, "one segment");
    ok(check("output.scores") == 0, "two segments");
    ok(check("choices.0.label") == 0, "an index segment");
    ok(check("") != 0, "empty path refused");
    ok(check(".a") != 0, "leading dot refused");
    ok(check("a.") != 0, "trailing dot refused");
    ok(check("a..b") != 0, "empty segment refused");
    ok(check("a b") != 0, "space refused");
    ok(check("a\tb") != 0, "control character refused");

    doc = json_loads("{\"output\":{\"scores\":[0.1,0.9]},"
                     "\"choices\":[{\"label\":\"cat\"},{\"label\":\"dog\"}],"
                     "\"10\":\"ten\",\"a.b\":1}", 0, NULL);
    ok(doc != NULL, "document parsed");

    v = get(doc, "output.scores");
    ok(json_is_array(v) && json_array_size(v) == 2, "array found");

    v = get(doc, "output.scores.1");
    ok(json_is_real(v) && json_real_value(v) == 0.9, "array index");

    is_str(json_string_value(get(doc, "choices.1.label")), "dog",
           "index then key");
    ok(get(doc, "choices.2.label") == NULL, "index out of range");
    ok(get(doc, "choices.x") == NULL, "non-numeric index of an array");
    ok(get(doc, "choices.-1") == NULL, "negative index");
    ok(get(doc, "output.missing") == NULL, "missing key");
    ok(get(doc, "output.scores.0.deeper") == NULL, "path through a number");
    is_str(json_string_value(get(doc, "10")), "ten", "digit key of an object");
    ok(get(doc, "a.b") == NULL, "dots always separate segments");

    long_key = malloc(300);
    memset(long_key, 'k', 299);
    long_key[299] = '\0';
    ok(get(doc, long_key) == NULL, "a key longer than the stack buffer");
    json_object_set_new(doc, long_key, json_true());
    ok(get(doc, long_key) == json_true(), "and found when present");
    free(long_key);

    json_decref(doc);

    return done_testing();
}
