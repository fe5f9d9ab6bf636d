#!/usr/bin/env python3
"""The reference for serverd's TOML parser (TOMLParserTests): Python's tomllib, on many documents at once.

Reads from stdin any number of documents, each framed as its byte count in ASCII decimal, a line feed, then the
bytes. Writes one line per document, in order:

    ok DUMP        tomllib accepts it; DUMP is the canonical typed form below
    error MESSAGE  tomllib refuses it (or one of the two rules below does)

DUMP, the same form the Swift test builds from a TOMLTable (any difference is a disagreement):
    table    {KEY=VALUE,KEY=VALUE}   entries in document order; KEY is the key's UTF-8 in hex
    array    [VALUE,VALUE]
    string   s:HEX                   the UTF-8 in hex ('s:' when empty)
    integer  i:DECIMAL
    float    f:nan | f:HEX16         the IEEE 754 bits, big-endian hex (so -0.0 differs from 0.0)
    boolean  b:true | b:false
    dates    odt:TEXT ldt:TEXT ld:TEXT lt:TEXT, TEXT canonical as TOMLDateTime documents it: YYYY-MM-DDTHH:MM:SS,
             a fraction to six digits without trailing zeros, offset Z when zero, else +HH:MM / -HH:MM

Two rules of TOML 1.0 that tomllib does not enforce, which serverd's parser does and which this script therefore
applies to tomllib's result (deliberate, documented disagreements with bare tomllib):
  - an integer must fit in 64 bits (tomllib returns Python's unbounded ints);
  - tables and arrays nest at most 100 levels (root table level 0, each table or array one more than its holder);
    tomllib itself fails with RecursionError a few hundred levels down.
"""
import datetime
import math
import struct
import sys
import tomllib

MAXIMUM_DEPTH = 100
INT64 = range(-(2 ** 63), 2 ** 63)


class Refused(Exception):
    pass


def fraction(microsecond):
    return ("." + ("%06d" % microsecond).rstrip("0")) if microsecond else ""


def time_text(value):
    return "%02d:%02d:%02d%s" % (value.hour, value.minute, value.second, fraction(value.microsecond))


def date_text(value):
    return "%04d-%02d-%02d" % (value.year, value.month, value.day)


def offset_text(offset):
    minutes = int(offset.total_seconds()) // 60
    if minutes == 0:
        return "Z"
    sign = "+" if minutes > 0 else "-"
    minutes = abs(minutes)
    return "%s%02d:%02d" % (sign, minutes // 60, minutes % 60)


def dump(value, depth):
    if isinstance(value, dict):
        if depth > MAXIMUM_DEPTH:
            raise Refused("tables and arrays nest more than %d levels deep" % MAXIMUM_DEPTH)
        return "{" + ",".join("%s=%s" % (key.encode().hex(), dump(item, depth + 1)) for key, item in value.items()) + "}"
    if isinstance(value, list):
        if depth > MAXIMUM_DEPTH:
            raise Refused("tables and arrays nest more than %d levels deep" % MAXIMUM_DEPTH)
        return "[" + ",".join(dump(item, depth + 1) for item in value) + "]"
    if isinstance(value, str):
        return "s:" + value.encode().hex()
    if isinstance(value, bool):
        return "b:true" if value else "b:false"
    if isinstance(value, int):
        if value not in INT64:
            raise Refused("integer %d does not fit in 64 bits" % value)
        return "i:%d" % value
    if isinstance(value, float):
        return "f:nan" if math.isnan(value) else "f:" + struct.pack(">d", value).hex()
    if isinstance(value, datetime.datetime):
        text = date_text(value) + "T" + time_text(value)
        if value.tzinfo is None:
            return "ldt:" + text
        return "odt:" + text + offset_text(value.utcoffset())
    if isinstance(value, datetime.date):
        return "ld:" + date_text(value)
    if isinstance(value, datetime.time):
        return "lt:" + time_text(value)
    raise TypeError("unexpected %r" % (value,))


def verdict(document):
    try:
        text = document.decode("utf-8")
        result = dump(tomllib.loads(text), 0)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, Refused) as error:
        return "error " + str(error).replace("\n", " ")
    except RecursionError:
        return "error nesting too deep for tomllib (RecursionError)"
    return "ok " + result


def main():
    data = sys.stdin.buffer.read()
    output = []
    position = 0
    while position < len(data):
        newline = data.index(b"\n", position)
        length = int(data[position:newline])
        start = newline + 1
        output.append(verdict(data[start:start + length]))
        position = start + length
    sys.stdout.write("\n".join(output) + ("\n" if output else ""))


if __name__ == "__main__":
    main()
