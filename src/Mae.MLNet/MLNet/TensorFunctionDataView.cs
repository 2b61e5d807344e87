using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Model;

namespace Mae.MLNet;

/// <summary>The lazy output of a <see cref="ITensorFunction"/> transformer: the input's columns plus the output
/// columns, computed batch by batch as a cursor moves (one forward pass per <c>batchSize</c> rows).</summary>
internal sealed class TensorFunctionDataView : IDataView
{
    readonly IDataView input;
    readonly ImageColumn image;
    readonly ITensorFunction function;
    readonly IReadOnlyList<OutputColumn> outputs;
    readonly int batchSize;

    public TensorFunctionDataView(IDataView input, ImageColumn image, ITensorFunction function, IReadOnlyList<OutputColumn> outputs, int batchSize)
    {
        this.input = input; this.image = image; this.function = function; this.outputs = outputs; this.batchSize = batchSize;
        MaeInputs.CheckInferenceBatchSize(batchSize, "BatchSize");
        if ((long)batchSize * Math.Max(image.Length, function.OutputLength) > Array.MaxLength)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize,
                $"BatchSize {batchSize} × {image.Length} pixel values per image is more than one buffer can hold; use a smaller BatchSize.");
        Schema = OutputColumn.AppendTo(input.Schema, outputs);
    }

    public DataViewSchema Schema { get; }
    public bool CanShuffle => input.CanShuffle;
    public long? GetRowCount() => input.GetRowCount();
    int FirstOutput => Schema.Count - outputs.Count;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = new HashSet<int>(columnsNeeded.Select(c => c.Index));
        bool compute = needed.Any(i => i >= FirstOutput);
        var inputColumns = input.Schema.Where(c => needed.Contains(c.Index) || (compute && c.Index == image.Column.Index)).ToList();
        var cursor = input.GetRowCursor(inputColumns, rand);
        return compute ? new BatchCursor(this, cursor, needed) : new PassThroughCursor(Schema, cursor, needed);
    }

    // One cursor: batching is where the speed is, and libtorch already uses every core inside a batch.
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>Reads up to batchSize input rows, runs the function on them at once, then serves them one by one.</summary>
    sealed class BatchCursor : DataViewRowCursor
    {
        readonly TensorFunctionDataView view;
        readonly DataViewRowCursor input;
        readonly HashSet<int> active;
        readonly Action<float[], int> readImage;
        readonly Dictionary<int, ColumnBuffer> buffers = new();
        readonly ValueGetter<DataViewRowId> inputId;
        readonly DataViewRowId[] ids;
        readonly float[] pixels, results;
        readonly int capacity, width;
        int count, slot = -1;
        long position = -1;
        bool inputDone;

        public BatchCursor(TensorFunctionDataView view, DataViewRowCursor input, HashSet<int> active)
        {
            this.view = view; this.input = input; this.active = active;
            capacity = view.batchSize;
            width = view.function.OutputLength;
            pixels = new float[capacity * view.image.Length];
            results = new float[capacity * width];
            ids = new DataViewRowId[capacity];
            readImage = view.image.MakeReader(input);
            inputId = input.GetIdGetter();
            foreach (var column in view.input.Schema)
                if (active.Contains(column.Index)) buffers[column.Index] = ColumnBuffer.Create(input, column, capacity);
        }

        public override DataViewSchema Schema => view.Schema;
        public override long Position => position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);

        public override bool MoveNext()
        {
            if (slot + 1 >= count && !Fill()) { slot = count; return false; }
            slot++;
            position++;
            return true;
        }

        bool Fill()
        {
            count = 0; slot = -1;
            if (inputDone) return false;
            while (count < capacity && input.MoveNext())
            {
                readImage(pixels, count * view.image.Length);
                inputId(ref ids[count]);
                foreach (var buffer in buffers.Values) buffer.Capture(count);
                count++;
            }
            if (count < capacity) inputDone = true;
            if (count == 0) return false;
            view.function.Run(pixels, count, results);
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!active.Contains(column.Index))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was made.");
            if (column.Index >= view.FirstOutput)
            {
                var output = view.outputs[column.Index - view.FirstOutput];
                return output.MakeGetter(() => results.AsMemory(slot * width, width)) as ValueGetter<TValue>
                    ?? throw new InvalidOperationException($"Column '{column.Name}' is {output.Type}; asked for {typeof(TValue).Name}.");
            }
            return buffers[column.Index].MakeGetter(() => slot) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type.RawType.Name}; asked for {typeof(TValue).Name}.");
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = ids[slot];

        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
            base.Dispose(disposing);
        }
    }

    /// <summary>When no output is asked for, rows flow straight from the input.</summary>
    internal sealed class PassThroughCursor(DataViewSchema schema, DataViewRowCursor input, HashSet<int> active) : DataViewRowCursor
    {
        public override DataViewSchema Schema => schema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);
        public override bool MoveNext() => input.MoveNext();
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            => input.GetGetter<TValue>(input.Schema[column.Index]);
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
        protected override void Dispose(bool disposing)
        {
            if (disposing) input.Dispose();
            base.Dispose(disposing);
        }
    }
}
