using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>Row-at-a-time mapping for <c>PredictionEngine</c>: the function's outputs for the current input row,
/// computed when first asked for and cached until the row changes.</summary>
internal sealed class TensorFunctionRowMapper : IRowToRowMapper
{
    readonly ImageColumn image;
    readonly ITensorFunction function;
    readonly IReadOnlyList<OutputColumn> outputs;

    public TensorFunctionRowMapper(DataViewSchema inputSchema, ImageColumn image, ITensorFunction function, IReadOnlyList<OutputColumn> outputs)
    {
        InputSchema = inputSchema; this.image = image; this.function = function; this.outputs = outputs;
        OutputSchema = OutputColumn.AppendTo(inputSchema, outputs);
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }
    int FirstOutput => OutputSchema.Count - outputs.Count;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var wanted = dependingColumns.Select(c => c.Index).ToHashSet();
        bool compute = wanted.Any(i => i >= FirstOutput);
        return InputSchema.Where(c => wanted.Contains(c.Index) || (compute && c.Index == image.Column.Index));
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
        => new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    sealed class Row : DataViewRow
    {
        readonly TensorFunctionRowMapper mapper;
        readonly DataViewRow input;
        readonly HashSet<int> active;
        readonly Action<float[], int>? readImage;
        readonly float[] pixels, results;
        long cachedPosition = -1;

        public Row(TensorFunctionRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper; this.input = input; this.active = active;
            pixels = new float[mapper.image.Length];
            results = new float[mapper.function.OutputLength];
            if (active.Any(i => i >= mapper.FirstOutput)) readImage = mapper.image.MakeReader(input);
        }

        public override DataViewSchema Schema => mapper.OutputSchema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => active.Contains(column.Index);
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        ReadOnlyMemory<float> Current()
        {
            if (cachedPosition != input.Position || input.Position < 0)
            {
                readImage!(pixels, 0);
                mapper.function.Run(pixels, 1, results);
                cachedPosition = input.Position;
            }
            return results;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < mapper.FirstOutput) return input.GetGetter<TValue>(input.Schema[column.Index]);
            var output = mapper.outputs[column.Index - mapper.FirstOutput];
            return output.MakeGetter(Current) as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' is {output.Type}; asked for {typeof(TValue).Name}.");
        }
    }
}
