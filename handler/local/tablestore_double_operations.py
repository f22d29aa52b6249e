"""The operations of one instance: protobuf request bytes in, protobuf response bytes out.

Only what is listed in OPERATIONS is modelled; any other API the SDK knows is refused with
OTSParameterInvalid "not modelled by the local double: ...", and so is any field of a modelled
request whose meaning the double does not implement (time ranges, column pagination, tokens,
transactions, TTL, several versions, secondary indexes, streams, auto-increment keys).
"""

from __future__ import annotations

import time
from typing import Any, Callable

from tablestore.protobuf import table_store_pb2 as pb

from .tablestore_double_conditions import ColumnCondition, parse_filter
from .tablestore_double_errors import ServiceError, invalid, not_modelled
from .tablestore_double_plainbuffer import PlainBufferError, ParsedRow, read_row, write_primary_key, write_rows
from .tablestore_double_tables import Table, table_name_error

MAX_BATCH_WRITE_ROWS = 200
MAX_BATCH_GET_ROWS = 100
MAX_WRITE_BYTES = 4 * 1024 * 1024  # PutRow, UpdateRow, and a whole BatchWriteRow
MAX_COLUMNS_TO_GET = 128
PAGE_ROWS = 5000
PAGE_BYTES = 4 * 1024 * 1024
PK_TYPES = {pb.INTEGER: "INTEGER", pb.STRING: "STRING", pb.BINARY: "BINARY"}
WRITE_OPERATIONS = frozenset({"PutRow", "UpdateRow", "DeleteRow", "BatchWriteRow", "CreateTable", "DeleteTable"})


def _parse(message_class: type, body: bytes) -> Any:
    message = message_class()
    try:
        message.ParseFromString(body)
        message.SerializeToString()  # raises when a required field is missing
    except Exception as exc:
        raise invalid(f"the request is not a valid {message_class.__name__}: {exc}") from None
    return message


def _row(data: bytes, what: str) -> ParsedRow:
    try:
        return read_row(data)
    except PlainBufferError as exc:
        if str(exc).startswith("not modelled"):
            raise invalid(str(exc)) from None
        raise invalid(f"{what}: {exc}") from None


def _consumed(message: Any, read: int = 0, write: int = 0) -> None:
    message.consumed.capacity_unit.read = read
    message.consumed.capacity_unit.write = write


def _refuse_unmodelled_read(request: Any) -> None:
    for name in ("time_range", "start_column", "end_column", "token", "transaction_id"):
        descriptor = request.DESCRIPTOR.fields_by_name.get(name)
        if descriptor is None:
            continue
        present = len(getattr(request, name)) if descriptor.label == descriptor.LABEL_REPEATED else request.HasField(name)
        if present:
            raise not_modelled(f"{name} on a read")
    if request.HasField("max_versions") and request.max_versions < 1:
        raise invalid("max_versions must be positive")


class Instance:
    """One Tablestore instance's tables; the double calls `handle` with its lock held."""

    def __init__(self, *, page_rows: int = PAGE_ROWS, page_bytes: int = PAGE_BYTES,
                 table_not_ready_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.tables: dict[str, Table] = {}
        self.page_rows = page_rows
        self.page_bytes = page_bytes
        self.table_not_ready_seconds = table_not_ready_seconds
        self.clock = clock
        self._handlers: dict[str, Callable[[bytes], bytes]] = {
            "CreateTable": self.create_table, "DescribeTable": self.describe_table,
            "DeleteTable": self.delete_table, "ListTable": self.list_table,
            "GetRow": self.get_row, "PutRow": self.put_row, "UpdateRow": self.update_row,
            "DeleteRow": self.delete_row, "BatchWriteRow": self.batch_write_row,
            "BatchGetRow": self.batch_get_row, "GetRange": self.get_range,
        }

    @property
    def operations(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def handle(self, operation: str, body: bytes) -> bytes:
        handler = self._handlers.get(operation)
        if handler is None:
            raise not_modelled(f"operation {operation}")
        return handler(body)

    def _table(self, name: str, *, ready: bool = True) -> Table:
        table = self.tables.get(name)
        if table is None:
            raise ServiceError("OTSObjectNotExist")
        if ready and self.clock() < table.ready_at:
            raise ServiceError("OTSTableNotReady")
        return table

    def _batch_tables(self, names: list[str]) -> dict[str, Table]:
        """The tables a batch names. Per-row errors are documented for conditions; what the service
        answers for a missing table inside a batch is not, so that is refused as not modelled."""
        tables = {}
        for name in names:
            if name not in self.tables:
                raise not_modelled(f"a batch naming a missing table ({name!r})")
            tables[name] = self._table(name)  # a table not ready yet fails the whole batch (the SDK retries it)
        return tables

    def _condition(self, condition: Any) -> tuple[int, ColumnCondition | None]:
        return condition.row_existence, parse_filter(condition.column_condition)

    # -- tables -------------------------------------------------------------------------------

    def create_table(self, body: bytes) -> bytes:
        request = _parse(pb.CreateTableRequest, body)
        meta = request.table_meta
        error = table_name_error(meta.table_name)
        if error:
            raise error
        if len(request.index_metas) or request.HasField("stream_spec") or len(meta.defined_column):
            raise not_modelled("secondary indexes, streams and defined columns")
        if not 1 <= len(meta.primary_key) <= 4:
            raise invalid("The number of primary key columns must be in range: [1, 4].")
        schema = []
        for column in meta.primary_key:
            if column.HasField("option"):
                raise not_modelled("auto-increment primary key columns")
            schema.append((column.name, PK_TYPES[column.type]))
        options = request.table_options
        if options.HasField("max_versions") and options.max_versions != 1:
            raise not_modelled(f"max_versions {options.max_versions} (tables keep one version)")
        if options.HasField("time_to_live") and options.time_to_live != -1:
            raise not_modelled(f"time_to_live {options.time_to_live} (rows never expire here)")
        if meta.table_name in self.tables:
            raise ServiceError("OTSObjectAlreadyExist")
        now = self.clock()
        self.tables[meta.table_name] = Table(meta.table_name, schema, time.time(), now + self.table_not_ready_seconds)
        return pb.CreateTableResponse().SerializeToString()

    def describe_table(self, body: bytes) -> bytes:
        table = self._table(_parse(pb.DescribeTableRequest, body).table_name, ready=False)
        response = pb.DescribeTableResponse()
        response.table_meta.table_name = table.name
        for name, kind in table.schema:
            column = response.table_meta.primary_key.add()
            column.name, column.type = name, {v: k for k, v in PK_TYPES.items()}[kind]
        details = response.reserved_throughput_details
        details.capacity_unit.read = details.capacity_unit.write = 0
        details.last_increase_time = int(table.created_at)
        response.table_options.time_to_live = -1
        response.table_options.max_versions = 1
        response.table_options.deviation_cell_version_in_sec = 86400
        return response.SerializeToString()

    def delete_table(self, body: bytes) -> bytes:
        name = _parse(pb.DeleteTableRequest, body).table_name
        self._table(name, ready=False)
        del self.tables[name]
        return pb.DeleteTableResponse().SerializeToString()

    def list_table(self, body: bytes) -> bytes:
        response = pb.ListTableResponse()
        response.table_names.extend(sorted(self.tables))
        return response.SerializeToString()

    # -- single-row writes --------------------------------------------------------------------

    def _write(self, table: Table, kind: str, row_bytes: bytes, condition: Any) -> ParsedRow:
        """One row write of `kind` (PUT, UPDATE, DELETE), condition checked; the row written."""
        if len(row_bytes) > MAX_WRITE_BYTES:
            raise invalid(f"The row's data exceeds the limit of {MAX_WRITE_BYTES} bytes.")
        row = _row(row_bytes, "row")
        key = table.key_of(row.primary_key)
        expectation, column_condition = self._condition(condition)
        if kind == "PUT":
            if row.delete_marker:
                raise invalid("a PutRow row carries a delete marker")
            table.put(key, row.primary_key, row.cells, expectation, column_condition)
        elif kind == "UPDATE":
            if row.delete_marker or not row.cells:
                raise invalid("an UpdateRow row needs at least one column and no delete marker")
            table.update(key, row.primary_key, row.cells, expectation, column_condition)
        else:
            if row.cells:
                raise invalid("a DeleteRow row carries columns")
            table.delete(key, expectation, column_condition)
        return row

    @staticmethod
    def _returned(request: Any, row: ParsedRow) -> bytes:
        if not request.HasField("return_content") or request.return_content.return_type == pb.RT_NONE:
            return b""
        if request.return_content.return_type == pb.RT_PK:
            return write_primary_key(row.primary_key)
        raise not_modelled("return_type RT_AFTER_MODIFY")

    def _single_write(self, message_class: type, response_class: type, kind: str, body: bytes, field: str) -> bytes:
        request = _parse(message_class, body)
        if request.HasField("transaction_id"):
            raise not_modelled("local transactions")
        if request.HasField("return_content") and request.return_content.return_type == pb.RT_AFTER_MODIFY:
            raise not_modelled("return_type RT_AFTER_MODIFY")
        row = self._write(self._table(request.table_name), kind, getattr(request, field), request.condition)
        response = response_class()
        _consumed(response, write=1)
        returned = self._returned(request, row)
        if returned:
            response.row = returned
        return response.SerializeToString()

    def put_row(self, body: bytes) -> bytes:
        return self._single_write(pb.PutRowRequest, pb.PutRowResponse, "PUT", body, "row")

    def update_row(self, body: bytes) -> bytes:
        return self._single_write(pb.UpdateRowRequest, pb.UpdateRowResponse, "UPDATE", body, "row_change")

    def delete_row(self, body: bytes) -> bytes:
        return self._single_write(pb.DeleteRowRequest, pb.DeleteRowResponse, "DELETE", body, "primary_key")

    # -- reads --------------------------------------------------------------------------------

    @staticmethod
    def _columns_to_get(request: Any) -> list[str]:
        if len(request.columns_to_get) > MAX_COLUMNS_TO_GET:
            raise invalid(f"The number of columns to get exceeds the limit: {MAX_COLUMNS_TO_GET}.")
        return list(request.columns_to_get)

    def get_row(self, body: bytes) -> bytes:
        request = _parse(pb.GetRowRequest, body)
        _refuse_unmodelled_read(request)
        table = self._table(request.table_name)
        key = table.key_of(_row(request.primary_key, "primary_key").primary_key)
        response = pb.GetRowResponse()
        _consumed(response, read=1)
        stored = table.rows.get(key)
        seen = stored and table.visible(stored, self._columns_to_get(request), parse_filter(request.filter))
        response.row = write_rows([seen]) if seen else b""
        return response.SerializeToString()

    def get_range(self, body: bytes) -> bytes:
        request = _parse(pb.GetRangeRequest, body)
        _refuse_unmodelled_read(request)
        if request.HasField("limit") and request.limit <= 0:
            raise invalid("The limit must be greater than 0.")
        table = self._table(request.table_name)
        start = table.key_of(_row(request.inclusive_start_primary_key, "start key").primary_key, bounds=True)
        end = table.key_of(_row(request.exclusive_end_primary_key, "end key").primary_key, bounds=True)
        rows, next_key = table.get_range(
            start, end, request.direction == pb.FORWARD, columns_to_get=self._columns_to_get(request),
            column_filter=parse_filter(request.filter), limit=request.limit if request.HasField("limit") else None,
            page_rows=self.page_rows, page_bytes=self.page_bytes,
        )
        response = pb.GetRangeResponse()
        _consumed(response, read=max(1, len(rows)))
        response.rows = write_rows(rows)
        if next_key is not None:
            response.next_start_primary_key = write_primary_key(next_key)
        return response.SerializeToString()

    # -- batches ------------------------------------------------------------------------------

    def batch_get_row(self, body: bytes) -> bytes:
        request = _parse(pb.BatchGetRowRequest, body)
        if sum(len(t.primary_key) for t in request.tables) > MAX_BATCH_GET_ROWS:
            raise invalid(f"The number of rows in BatchGetRow exceeds the limit: {MAX_BATCH_GET_ROWS}.")
        tables = self._batch_tables([t.table_name for t in request.tables])
        response = pb.BatchGetRowResponse()
        for wanted in request.tables:
            _refuse_unmodelled_read(wanted)
            column_filter = parse_filter(wanted.filter)
            answer = response.tables.add()
            answer.table_name = wanted.table_name
            for pk_bytes in wanted.primary_key:
                item = answer.rows.add()
                try:  # errors are per row
                    table = tables[wanted.table_name]
                    key = table.key_of(_row(pk_bytes, "primary_key").primary_key)
                    stored = table.rows.get(key)
                    seen = stored and table.visible(stored, self._columns_to_get(wanted), column_filter)
                    item.is_ok = True
                    _consumed(item, read=1)
                    item.row = write_rows([seen]) if seen else b""
                except ServiceError as exc:
                    item.is_ok = False
                    item.error.code, item.error.message = exc.code, exc.message
        return response.SerializeToString()

    def batch_write_row(self, body: bytes) -> bytes:
        if len(body) > MAX_WRITE_BYTES:
            raise invalid(f"The total data size of BatchWriteRow request exceeds the limit: {MAX_WRITE_BYTES}.")
        request = _parse(pb.BatchWriteRowRequest, body)
        if request.HasField("transaction_id"):
            raise not_modelled("local transactions")
        count = sum(len(t.rows) for t in request.tables)
        if count > MAX_BATCH_WRITE_ROWS:
            raise invalid(f"The total rows count of BatchWriteRow request exceeds the limit: {MAX_BATCH_WRITE_ROWS}.")
        if count == 0:
            raise invalid("BatchWriteRow carries no rows.")
        seen_keys: set[tuple[str, bytes]] = set()
        for table_rows in request.tables:  # malformed rows fail the whole request before any is written
            for item in table_rows.rows:
                row = _row(item.row_change, "row_change")
                if item.HasField("return_content") and item.return_content.return_type == pb.RT_AFTER_MODIFY:
                    raise not_modelled("return_type RT_AFTER_MODIFY")
                identity = (table_rows.table_name, write_primary_key(row.primary_key))
                if identity in seen_keys:
                    raise invalid("Duplicated primary key in one BatchWriteRow request.")
                seen_keys.add(identity)
        tables = self._batch_tables([t.table_name for t in request.tables])
        kinds = {pb.PUT: "PUT", pb.UPDATE: "UPDATE", pb.DELETE: "DELETE"}
        response = pb.BatchWriteRowResponse()
        for table_rows in request.tables:
            answer = response.tables.add()
            answer.table_name = table_rows.table_name
            for item in table_rows.rows:
                result = answer.rows.add()
                try:
                    row = self._write(tables[table_rows.table_name], kinds[item.type], item.row_change,
                                      item.condition)
                    result.is_ok = True
                    _consumed(result, write=1)
                    returned = self._returned(item, row)
                    if returned:
                        result.row = returned
                except ServiceError as exc:
                    result.is_ok = False
                    result.error.code, result.error.message = exc.code, exc.message
        return response.SerializeToString()
