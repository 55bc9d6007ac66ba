"""check_metrics.py FILE — a strict validator of the Prometheus text exposition format 0.0.4, for
vpq's GET /metrics (Debian's promtool comes only with the whole prometheus server package).
It checks what `promtool check metrics` does and more: every line parses (names, label names
and values with their escapes, values including NaN and ±Inf, optional integer timestamps);
each family has one # HELP and one # TYPE (a known type) before its first sample, and its
samples are together; counters are named *_total; no series is there twice; the text ends with
a newline. Prints each problem with its line number and exits 1 if there is any; prints the
number of families and samples otherwise."""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
VALUE = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?|NaN|Inf)"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"(%s)(?:\{((?:%s=%s)(?:,%s=%s)*,?)?\})? (%s)(?: (-?[0-9]+))?" % (NAME, LABEL, LABEL_VALUE, LABEL, LABEL_VALUE, VALUE))
PAIR = re.compile(r"(%s)=(%s)" % (LABEL, LABEL_VALUE))
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def check(text):
    """The problems of exposition `text`, and its numbers of families and samples."""
    problems = []
    help_of, type_of, sampled, series = {}, {}, set(), set()
    current = None  # the family of the previous sample
    if text and not text.endswith("\n"):
        problems.append("the text does not end with a newline")
    for number, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        where = "line %d: " % number
        if not line.strip():
            continue
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (%s)(?: (.*))?" % NAME, line)
            if not m:
                if re.match(r"#\s*(HELP|TYPE)\b", line):
                    problems.append(where + "malformed %s" % line.split()[1])
                continue  # any other comment
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ""
            if kind == "HELP":
                if name in help_of:
                    problems.append(where + "second HELP for %s" % name)
                if any(c not in ("\\", "n") for c in re.findall(r"\\(.|$)", rest)):
                    problems.append(where + "bad escape in the HELP of %s" % name)
                help_of[name] = rest
            else:
                if name in type_of:
                    problems.append(where + "second TYPE for %s" % name)
                if rest not in TYPES:
                    problems.append(where + "unknown type %r for %s" % (rest, name))
                if name in sampled:
                    problems.append(where + "TYPE for %s after its samples" % name)
                type_of[name] = rest
            continue
        m = SAMPLE.fullmatch(line)
        if not m:
            problems.append(where + "not a sample: %r" % line)
            continue
        name, labels = m.group(1), m.group(2) or ""
        family = name
        if name not in type_of:
            for suffix in ("_bucket", "_sum", "_count"):
                base = name[: -len(suffix)]
                if name.endswith(suffix) and type_of.get(base) in ("histogram", "summary"):
                    family = base
        if family not in type_of:
            problems.append(where + "sample of %s before (or without) its TYPE" % name)
        if family not in help_of:
            problems.append(where + "%s has no HELP" % family)
        if family != current and family in sampled:
            problems.append(where + "the samples of %s are not together" % family)
        current = family
        sampled.add(family)
        pairs = PAIR.findall(labels)
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            problems.append(where + "a label twice")
        if any(k.startswith("__") for k in names):
            problems.append(where + "a label name with the reserved prefix __")
        key = (name, tuple(sorted(pairs)))
        if key in series:
            problems.append(where + "series %s{%s} twice" % (name, labels))
        series.add(key)
    for name, kind in type_of.items():
        if kind == "counter" and not name.endswith("_total"):
            problems.append("counter %s is not named *_total" % name)
    return problems, len(type_of), len(series)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    problems, families, samples = check(text)
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("%d families, %d samples: valid Prometheus text format 0.0.4" % (families, samples))


main()
