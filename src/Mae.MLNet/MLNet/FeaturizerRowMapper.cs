using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>Row-at-a-time mapping for <c>PredictionEngine</c>: the features of the current input row, computed when
/// first asked for and cached until the row changes.</summary>
internal sealed class FeaturizerRowMapper : IRowToRowMapper
{
    readonly MaeFeaturizerTransformer transformer;
    readonly ImageColumn image;

    public FeaturizerRowMapper(MaeFeaturizerTransformer transformer, DataViewSchema inputSchema)
    {
        this.transformer = transformer;
        InputSchema = inputSchema;
        OutputSchema = transformer.GetOutputSchema(inputSchema);
        image = ImageColumn.Bind(inputSchema, transformer.Options.InputColumnName, transformer.Runner.Config);
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }
    int OutputIndex => OutputSchema.Count - 1;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var wanted = dependingColumns.Select(c => c.Index).ToHashSet();
        return InputSchema.Where(c => wanted.Contains(c.Index) || (wanted.Contains(OutputIndex) && c.Index == image.Column.Index));
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
        => new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    sealed class Row : DataViewRow
    {
        readonly FeaturizerRowMapper mapper;
        readonly DataViewRow input;
        readonly HashSet<int> active;
        readonly Action<float[], int>? readImage;
        readonly float[] pixels, features;
        long cachedPosition = -1;

        public Row(FeaturizerRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper; this.input = input; this.active = active;
            var runner = mapper.transformer.Runner;
            pixels = new float[runner.InputLength];
            features = new float[runner.FeatureDim];
            if (active.Contains(mapper.OutputIndex)) readImage = mapper.image.MakeReader(input);
        }

        public override DataViewSchema Schema => mapper.OutputSchema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index != mapper.OutputIndex) return input.GetGetter<TValue>(input.Schema[column.Index]);
            ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> value) =>
            {
                if (cachedPosition != input.Position || input.Position < 0)
                {
                    readImage!(pixels, 0);
                    mapper.transformer.Runner.Run(pixels, 1, features);
                    cachedPosition = input.Position;
                }
                var editor = VBufferEditor.Create(ref value, features.Length);
                features.AsSpan().CopyTo(editor.Values);
                value = editor.Commit();
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is VBuffer<Single>; asked for {typeof(TValue).Name}.");
        }
    }
}
