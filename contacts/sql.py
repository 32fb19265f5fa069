"""SQL the ORM does not write well, shared by the apps."""

from django.db import connection


def update_from_values(model, objects, field_names) -> None:
    """Write `field_names` of many saved `objects` with one
    UPDATE … FROM (VALUES …). Django's bulk_update builds a CASE per field
    per row, and building it costs more than the update itself; it is what
    SQLite (the embedded default) gets."""
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objects, field_names)
        return
    quote = connection.ops.quote_name
    values, params, columns = typed_values(model, objects, field_names)
    assignments = ", ".join(f"{column} = v.{column}" for column in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(model._meta.db_table)} AS t SET {assignments} "
            f"FROM {values} AS v(id, {', '.join(columns)}) WHERE t.id = v.id",
            params,
        )


def typed_values(model, objects, field_names, *, extra=()):
    """`(VALUES (%s, %s::type, …), …)` of each object's pk and `field_names`,
    prepared for the database, then one column per (cast, value of object)
    pair of `extra`; its parameters; the fields' quoted column names."""
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    casts = [field.db_type(connection) for field in fields] + [cast for cast, _ in extra]
    row = "(%s, " + ", ".join(f"%s::{cast}" for cast in casts) + ")"
    params = []
    for obj in objects:
        params.append(obj.pk)
        params.extend(
            field.get_db_prep_save(getattr(obj, field.attname), connection) for field in fields
        )
        params.extend(value(obj) for _, value in extra)
    columns = [quote(field.column) for field in fields]
    return f"(VALUES {', '.join([row] * len(objects))})", params, columns


def array_literal(values) -> str:
    """A PostgreSQL array literal of integers or booleans ("{1,NULL,3}"), to
    pass as one parameter cast to bigint[] or boolean[]. psycopg quotes a
    Python list element by element, which costs more than the statement for
    the tens of thousands of elements of an import's chunk."""
    return (
        "{"
        + ",".join(
            "NULL" if v is None else ("t" if v is True else "f" if v is False else str(int(v)))
            for v in values
        )
        + "}"
    )
