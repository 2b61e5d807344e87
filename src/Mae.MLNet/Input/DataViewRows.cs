using Microsoft.ML;

namespace Mae.MLNet.Input;

/// <summary>How many rows a view has: its own count when it knows it, else one pass of a cursor that reads no column.</summary>
internal static class DataViewRows
{
    internal static long Count(IDataView view)
    {
        if (view.GetRowCount() is long known) return known;
        long n = 0;
        using var cursor = view.GetRowCursor(Array.Empty<DataViewSchema.Column>());
        while (cursor.MoveNext()) n++;
        return n;
    }
}
