using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>A data view with a schema and no rows: what ML.NET estimators need to be fitted for their schema only.</summary>
internal sealed class EmptyDataView(DataViewSchema schema) : IDataView
{
    public DataViewSchema Schema { get; } = schema;
    public bool CanShuffle => true;
    public long? GetRowCount() => 0;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(Schema);
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

    sealed class Cursor(DataViewSchema schema) : DataViewRowCursor
    {
        public override DataViewSchema Schema => schema;
        public override long Position => -1;
        public override long Batch => 0;
        public override bool MoveNext() => false;
        public override bool IsColumnActive(DataViewSchema.Column column) => true;
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            => throw new InvalidOperationException("An empty data view has no rows to read.");
        public override ValueGetter<DataViewRowId> GetIdGetter()
            => throw new InvalidOperationException("An empty data view has no rows to read.");
    }
}
