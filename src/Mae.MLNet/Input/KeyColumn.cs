using Microsoft.ML;

namespace Mae.MLNet.Input;

/// <summary>Reads a label column of ML.NET key type as 1-based key values (0 = missing), whatever its raw width.</summary>
internal static class KeyColumn
{
    internal static Func<ulong> Reader(DataViewRow row, DataViewSchema.Column column)
    {
        var raw = column.Type.RawType;
        if (raw == typeof(uint)) { var g = row.GetGetter<uint>(column); uint v = 0; return () => { g(ref v); return v; }; }
        if (raw == typeof(ulong)) { var g = row.GetGetter<ulong>(column); ulong v = 0; return () => { g(ref v); return v; }; }
        if (raw == typeof(ushort)) { var g = row.GetGetter<ushort>(column); ushort v = 0; return () => { g(ref v); return v; }; }
        if (raw == typeof(byte)) { var g = row.GetGetter<byte>(column); byte v = 0; return () => { g(ref v); return v; }; }
        throw new ArgumentOutOfRangeException(nameof(column), $"Label column '{column.Name}' has key raw type {raw.Name}; expected Byte, UInt16, UInt32 or UInt64.");
    }
}
