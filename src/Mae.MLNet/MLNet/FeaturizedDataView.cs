using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>The lazy output of <see cref="MaeFeaturizerTransformer.Transform"/>: the input's columns plus the
/// features column, computed batch by batch as a cursor moves.</summary>
internal sealed class FeaturizedDataView : IDataView
{
    readonly MaeFeaturizerTransformer transformer;
    readonly IDataView input;
    readonly ImageColumn image;

    public FeaturizedDataView(MaeFeaturizerTransformer transformer, IDataView input)
    {
        this.transformer = transformer;
        this.input = input;
        Schema = transformer.GetOutputSchema(input.Schema);
        image = ImageColumn.Bind(input.Schema, transformer.Options.InputColumnName, transformer.Runner.Config);
    }

    public DataViewSchema Schema { get; }
    public bool CanShuffle => input.CanShuffle;
    public long? GetRowCount() => input.GetRowCount();
    int OutputIndex => Schema.Count - 1;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = new HashSet<int>(columnsNeeded.Select(c => c.Index));
        bool features = needed.Contains(OutputIndex);
        var inputColumns = input.Schema.Where(c => needed.Contains(c.Index) || (features && c.Index == image.Column.Index)).ToList();
        var cursor = input.GetRowCursor(inputColumns, rand);
        return features
            ? new BatchCursor(this, cursor, needed)
            : new PassThroughCursor(Schema, cursor, needed);
    }

    // One cursor: batching is where the speed is, and libtorch already uses every core inside a batch.
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    /// <summary>Reads up to BatchSize input rows, featurizes them in one forward pass, then serves them one by one.</summary>
    sealed class BatchCursor : DataViewRowCursor
    {
        readonly FeaturizedDataView view;
        readonly DataViewRowCursor input;
        readonly HashSet<int> active;
        readonly Action<float[], int> readImage;
        readonly Dictionary<int, ColumnBuffer> buffers = new();
        readonly ValueGetter<DataViewRowId> inputId;
        readonly DataViewRowId[] ids;
        readonly float[] pixels, features;
        readonly int capacity, dim;
        int count, slot = -1;
        long position = -1;
        bool inputDone;

        public BatchCursor(FeaturizedDataView view, DataViewRowCursor input, HashSet<int> active)
        {
            this.view = view; this.input = input; this.active = active;
            var runner = view.transformer.Runner;
            capacity = view.transformer.Options.BatchSize;
            dim = runner.FeatureDim;
            pixels = new float[capacity * runner.InputLength];
            features = new float[capacity * dim];
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
            view.transformer.Runner.Run(pixels, count, features);
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!active.Contains(column.Index))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was made.");
            if (column.Index == view.OutputIndex)
            {
                ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> value) =>
                {
                    var editor = VBufferEditor.Create(ref value, dim);
                    features.AsSpan(slot * dim, dim).CopyTo(editor.Values);
                    value = editor.Commit();
                };
                return getter as ValueGetter<TValue>
                    ?? throw new InvalidOperationException($"Column '{column.Name}' is VBuffer<Single>; asked for {typeof(TValue).Name}.");
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

    /// <summary>When the features are not asked for, rows flow straight from the input.</summary>
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
