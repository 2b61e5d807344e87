using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>Estimator of <see cref="MaeFeaturizerTransformer"/>. Nothing is learned: <c>Fit</c> checks the data's
/// schema against the model and returns the transformer.</summary>
internal sealed class MaeFeaturizerEstimator : IEstimator<MaeFeaturizerTransformer>
{
    readonly MaeEncoder? encoder;
    readonly ConvNextV2? convNext;

    internal MaeFeaturizerEstimator(MaeEncoder encoder, MaeFeaturizerOptions options)
    {
        this.encoder = encoder ?? throw new ArgumentNullException(nameof(encoder));
        options.Validate();
        (options.Normalization ?? PixelNormalization.Default(encoder.Config.InChannels)).Validate(encoder.Config.InChannels);
        Options = options;
    }

    internal MaeFeaturizerEstimator(ConvNextV2 model, MaeFeaturizerOptions options)
    {
        convNext = model ?? throw new ArgumentNullException(nameof(model));
        options.Validate();
        (options.Normalization ?? PixelNormalization.Default(model.Config.InChannels)).Validate(model.Config.InChannels);
        Options = options;
    }

    MaeConfig Geometry => encoder?.Config ?? convNext!.Config.InputGeometry;

    public MaeFeaturizerOptions Options { get; }
    /// <summary>The caller's ML.NET environment, from the catalog that made the estimator (for saving).</summary>
    internal MaeHost? Host { get; init; }

    public MaeFeaturizerTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        ImageColumn.Bind(input.Schema, Options.InputColumnName, Geometry);
        if (input.GetRowCount() == 0)
            throw new ArgumentException("The data view has no rows; MaeFeaturize needs at least one image.", nameof(input));
        return encoder is not null
            ? new MaeFeaturizerTransformer(encoder, Options) { InputSchema = input.Schema, Host = Host }
            : new MaeFeaturizerTransformer(convNext!, Options) { InputSchema = input.Schema, Host = Host };
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
        => OutputSchema(inputSchema, Options, encoder is not null ? MaeEncoder.FeatureWidth(encoder.Config, Options.Pooling, Options.Layers) : convNext!.FeatureWidth(Options.Layers));

    internal static SchemaShape OutputSchema(SchemaShape inputSchema, MaeFeaturizerOptions Options, int featureDim)
    {
        if (SchemaShapes.Find(inputSchema, Options.InputColumnName) is not SchemaShape.Column column)
            throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Input column '{Options.InputColumnName}' was not found.");
        bool vector = column.Kind == SchemaShape.Column.VectorKind.Vector && column.ItemType == NumberDataViewType.Single;
        bool image = column.Kind == SchemaShape.Column.VectorKind.Scalar && column.ItemType is Microsoft.ML.Transforms.Image.ImageDataViewType;
        bool paths = column.Kind == SchemaShape.Column.VectorKind.Scalar && column.ItemType is TextDataViewType;
        bool bytes = column.Kind != SchemaShape.Column.VectorKind.Scalar && column.ItemType == NumberDataViewType.Byte;
        if (!vector && !image && !paths && !bytes)
            throw new ArgumentOutOfRangeException(nameof(inputSchema),
                $"Column '{Options.InputColumnName}' is {column.Kind} of {column.ItemType}; expected a known-size vector of Single (CHW pixels), an image, " +
                "a text column of image file paths, or a vector of Byte of encoded images (LoadRawImageBytes).");
        var added = SchemaShapes.SingleVector(Options.OutputColumnName, featureDim);
        return new SchemaShape(inputSchema.Where(c => c.Name != Options.OutputColumnName).Append(added));
    }
}
