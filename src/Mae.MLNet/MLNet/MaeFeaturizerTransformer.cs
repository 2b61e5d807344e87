using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Interop.Onnx;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet;

/// <summary>
/// Applies a frozen MAE encoder to an image column and adds a feature vector column (width = the encoder's
/// embedding dimension). Lazy and batched: rows are featurized <see cref="MaeFeaturizerOptions.BatchSize"/> at a
/// time as a cursor moves; all other columns pass through. Works row by row under <c>PredictionEngine</c>.
/// </summary>
public sealed class MaeFeaturizerTransformer : ITransformer
{
    internal MaeFeaturizerTransformer(MaeEncoder encoder, MaeFeaturizerOptions options)
    {
        options.Validate();
        Encoder = encoder ?? throw new ArgumentNullException(nameof(encoder));
        Options = options;
        Normalization = (options.Normalization ?? PixelNormalization.Default(encoder.Config.InChannels)).Validate(encoder.Config.InChannels);
        MaeEncoder.CheckLayers(options.Layers, encoder.Config, nameof(options.Layers));
        Runner = new EncoderRunner(encoder, options.Pooling, options.Layers, options.Device, Normalization);
    }

    public MaeEncoder Encoder { get; }
    public MaeFeaturizerOptions Options { get; }
    public PixelNormalization Normalization { get; }
    /// <summary>Width of the output vector.</summary>
    public int FeatureDim => Runner.FeatureDim;
    internal EncoderRunner Runner { get; }
    /// <summary>The whole MAE when this featurizer came from <c>MaePretrain</c> (for reconstructions), else null.</summary>
    public MaskedAutoencoder? Autoencoder { get; internal init; }
    /// <summary>The schema it was fitted on (needed to save it as ML.NET's ONNX transformer).</summary>
    public DataViewSchema? InputSchema { get; internal init; }
    /// <summary>Losses and timings of the pre-training run when this featurizer came from <c>MaePretrain</c>.</summary>
    public Pretraining.MaePretrainResult? Pretraining { get; internal init; }
    /// <summary>The caller's ML.NET environment, from the catalog that made the estimator (for saving).</summary>
    internal MaeHost? Host { get; init; }

    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
        => ImageColumnMapping.OutputSchema(inputSchema, Options.InputColumnName, Runner, Outputs);

    IReadOnlyList<OutputColumn> Outputs => new[] { OutputColumn.Vector(Options.OutputColumnName, 0, FeatureDim) };

    public IDataView Transform(IDataView input) => ImageColumnMapping.Transform(input, Options.InputColumnName, Runner, Outputs, Options.BatchSize);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
        => ImageColumnMapping.RowMapper(inputSchema, Options.InputColumnName, Runner, Outputs);

    /// <summary>Saved as ML.NET's own <c>OnnxTransformer</c> over an exported ONNX graph (ML.NET keeps the members an
    /// outside transformer would need to store its own state internal). Loading the zip gives that OnnxTransformer.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx) => OnnxPersistence.Save(this, ctx);

    /// <summary>Writes the encoder, with this featurizer's pixel normalisation and pooling, as an ONNX model
    /// (opset 17, dynamic batch): input = the pixel vector, output = the features. Scores with ONNX Runtime alone.</summary>
    public void ExportOnnx(string path)
    {
        Interop.Onnx.MaeOnnxExport.Export(Encoder, path, new Interop.Onnx.MaeOnnxOptions
        {
            InputName = Options.InputColumnName, FeaturesName = Options.OutputColumnName, Pooling = Options.Pooling,
            Layers = Options.Layers, Normalization = Normalization,
        });
    }
}
