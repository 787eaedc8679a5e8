# The workload of python-dicts.trace.gz: build records, index them, serialise and parse a slice,
# drop half. Recorded with PYTHONMALLOC=malloc, so that every object goes through malloc.
import json

records = [{"id": i, "name": "item%d" % i, "tags": ["t%d" % (i % 7), "g%d" % (i % 3)], "score": i * 0.5} for i in range(2000)]
index = {}
for r in records:
    for t in r["tags"]:
        index.setdefault(t, []).append(r["id"])
text = json.dumps(records[:1000])
back = json.loads(text)
del records[::2]
print(len(records), len(index), len(text), len(back))
