"""schemathesis hooks for `scripts/schemathesis` (loaded through `hooks` in schemathesis.toml).

JSON Schema counts `20.0` as an integer; jifen does not (points are whole numbers, parsed
strictly; the API description says integers are written without a fraction or exponent).
So schema-valid data that the server rightly refuses is written as the server expects it:
every float with an integral value becomes an int, in the body and the query of cases
generated as valid data. Negative cases are left alone, whatever they hold.

`map_case` rather than `map_body`: in schemathesis 4.32 the coverage phase applies only
the case hooks, while the fuzzing and stateful phases apply both.
"""

import schemathesis
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation


def _whole_numbers_as_ints(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_ints(item) for item in value]
    return value


def _is_negative(case, location):
    return case.meta is not None and case.meta.is_negative_at(location)


@schemathesis.hook
def map_case(ctx, case):
    # Compared by repr: `20.0 == 20` in Python. Only a changed part is set, so that
    # schemathesis revalidates just what the hook touched.
    if not _is_negative(case, ParameterLocation.BODY) and not isinstance(case.body, NotSet):
        body = _whole_numbers_as_ints(case.body)
        if repr(body) != repr(case.body):
            case.body = body
    if not _is_negative(case, ParameterLocation.QUERY) and case.query:
        query = _whole_numbers_as_ints(case.query)
        if repr(query) != repr(case.query):
            case.query = query
    return case
