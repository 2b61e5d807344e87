using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>Holds one input column's values for the rows of a batch, so a cursor that reads ahead can still serve
/// every pass-through column of the row it is on.</summary>
internal abstract class ColumnBuffer
{
    public abstract void Capture(int slot);
    public abstract Delegate MakeGetter(Func<int> slot);

    public static ColumnBuffer Create(DataViewRow input, DataViewSchema.Column column, int capacity)
    {
        var raw = column.Type.RawType;
        bool vector = raw.IsGenericType && raw.GetGenericTypeDefinition() == typeof(VBuffer<>);
        var method = typeof(ColumnBuffer).GetMethod(vector ? nameof(CreateVector) : nameof(CreateScalar), BindingFlags.NonPublic | BindingFlags.Static)!;
        return (ColumnBuffer)method.MakeGenericMethod(vector ? raw.GetGenericArguments()[0] : raw).Invoke(null, new object[] { input, column, capacity })!;
    }

    static ColumnBuffer CreateScalar<T>(DataViewRow input, DataViewSchema.Column column, int capacity)
        => new Scalar<T>(input.GetGetter<T>(column), capacity);

    static ColumnBuffer CreateVector<T>(DataViewRow input, DataViewSchema.Column column, int capacity)
        => new Vector<T>(input.GetGetter<VBuffer<T>>(column), capacity);

    sealed class Scalar<T>(ValueGetter<T> source, int capacity) : ColumnBuffer
    {
        readonly T[] values = new T[capacity];
        public override void Capture(int slot) => source(ref values[slot]);
        public override Delegate MakeGetter(Func<int> slot) => new ValueGetter<T>((ref T value) => value = values[slot()]);
    }

    /// <summary>Vectors are deep-copied into buffers each slot owns: a getter may hand out memory it reuses.</summary>
    sealed class Vector<T>(ValueGetter<VBuffer<T>> source, int capacity) : ColumnBuffer
    {
        readonly VBuffer<T>[] values = new VBuffer<T>[capacity];
        VBuffer<T> scratch;

        public override void Capture(int slot)
        {
            source(ref scratch);
            scratch.CopyTo(ref values[slot]);
        }

        public override Delegate MakeGetter(Func<int> slot)
            => new ValueGetter<VBuffer<T>>((ref VBuffer<T> value) => values[slot()].CopyTo(ref value));
    }
}
