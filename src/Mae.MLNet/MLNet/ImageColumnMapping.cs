using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// The ITransformer members shared by the transformers that run an <see cref="ITensorFunction"/> over an image column
/// (featurizer, fine-tuned classifier, attentive probe): bind the column against the model, then the output schema, the
/// lazy batched view, or the row mapper of <see cref="PredictionEngine{TSrc, TDst}"/>.
/// </summary>
internal static class ImageColumnMapping
{
    public static DataViewSchema OutputSchema(DataViewSchema inputSchema, string inputColumnName, ITensorFunction function, IReadOnlyList<OutputColumn> outputs)
    {
        if (inputSchema is null) throw new ArgumentNullException(nameof(inputSchema));
        ImageColumn.Bind(inputSchema, inputColumnName, function.Config);
        return OutputColumn.AppendTo(inputSchema, outputs);
    }

    public static IDataView Transform(IDataView input, string inputColumnName, ITensorFunction function, IReadOnlyList<OutputColumn> outputs, int batchSize)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        var image = ImageColumn.Bind(input.Schema, inputColumnName, function.Config);
        return new TensorFunctionDataView(input, image, function, outputs, batchSize);
    }

    public static IRowToRowMapper RowMapper(DataViewSchema inputSchema, string inputColumnName, ITensorFunction function, IReadOnlyList<OutputColumn> outputs)
    {
        if (inputSchema is null) throw new ArgumentNullException(nameof(inputSchema));
        return new TensorFunctionRowMapper(inputSchema, ImageColumn.Bind(inputSchema, inputColumnName, function.Config), function, outputs);
    }
}
