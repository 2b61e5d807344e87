using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>A batched function from image rows (CHW floats) to a fixed number of output floats per row, run on
/// libtorch: the MAE encoder (features) or a fine-tuned classifier (class probabilities).</summary>
internal interface ITensorFunction
{
    /// <summary>The model's input geometry (to bind the image column).</summary>
    MaeConfig Config { get; }
    int OutputLength { get; }
    /// <summary>Outputs of <paramref name="rows"/> images stored back to back in <paramref name="pixels"/>.</summary>
    void Run(float[] pixels, int rows, float[] outputs);
}

/// <summary>A column computed from one row's slice of the function's outputs.</summary>
internal sealed class OutputColumn
{
    public required string Name { get; init; }
    public required DataViewType Type { get; init; }
    public DataViewSchema.Annotations? Annotations { get; init; }
    /// <summary>Makes the getter, given a function that returns the current row's outputs.</summary>
    public required Func<Func<ReadOnlyMemory<float>>, Delegate> MakeGetter { get; init; }

    /// <summary>The outputs [offset, offset + length) as a Single vector.</summary>
    public static OutputColumn Vector(string name, int offset, int length, DataViewSchema.Annotations? annotations = null) => new()
    {
        Name = name, Type = new VectorDataViewType(NumberDataViewType.Single, length), Annotations = annotations,
        MakeGetter = row => new ValueGetter<VBuffer<float>>((ref VBuffer<float> value) =>
        {
            var editor = VBufferEditor.Create(ref value, length);
            row().Span.Slice(offset, length).CopyTo(editor.Values);
            value = editor.Commit();
        }),
    };

    /// <summary>The key (1-based) of the largest output in [offset, offset + length) (first on ties); 0 (missing) if
    /// all are NaN. The key's raw type is <paramref name="type"/>'s.</summary>
    public static OutputColumn ArgMaxKey(string name, KeyDataViewType type, int offset, int length, DataViewSchema.Annotations? annotations = null)
    {
        Func<Func<ReadOnlyMemory<float>>, Delegate> make = type.RawType switch
        {
            var t when t == typeof(uint) => row => new ValueGetter<uint>((ref uint v) => v = (uint)ArgMax(row().Span.Slice(offset, length))),
            var t when t == typeof(ulong) => row => new ValueGetter<ulong>((ref ulong v) => v = (ulong)ArgMax(row().Span.Slice(offset, length))),
            var t when t == typeof(ushort) => row => new ValueGetter<ushort>((ref ushort v) => v = (ushort)ArgMax(row().Span.Slice(offset, length))),
            var t when t == typeof(byte) => row => new ValueGetter<byte>((ref byte v) => v = (byte)ArgMax(row().Span.Slice(offset, length))),
            _ => throw new ArgumentException($"Key columns of raw type {type.RawType.Name} are not supported."),
        };
        return new OutputColumn { Name = name, Type = type, Annotations = annotations, MakeGetter = make };
    }

    static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = -1;
        for (int i = 0; i < values.Length; i++)
            if (!float.IsNaN(values[i]) && (best < 0 || values[i] > values[best])) best = i;
        return best + 1;
    }

    /// <summary>The input schema plus the output columns (which hide input columns of the same names).</summary>
    public static DataViewSchema AppendTo(DataViewSchema input, IReadOnlyList<OutputColumn> outputs)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(input);
        foreach (var o in outputs) builder.AddColumn(o.Name, o.Type, o.Annotations);
        return builder.ToSchema();
    }
}
