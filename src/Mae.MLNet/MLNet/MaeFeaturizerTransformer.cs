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
        this.encoder = encoder ?? throw new ArgumentNullException(nameof(encoder));
        Options = options;
        Normalization = (options.Normalization ?? PixelNormalization.Default(encoder.Config.InChannels)).Validate(encoder.Config.InChannels);
        MaeEncoder.CheckLayers(options.Layers, encoder.Config, nameof(options.Layers));
        Runner = new EncoderRunner(encoder, options.Pooling, options.Layers, options.Device, Normalization);
    }

    /// <summary>A ConvNeXt V2 featurizer (<see cref="ConvNext"/>): the last stage's globally averaged, normalised
    /// features, or with <see cref="MaeFeaturizerOptions.Layers"/> = n (1–4) those of the last n stages concatenated
    /// (<see cref="ConvNextV2.ForwardFeatures(TorchSharp.torch.Tensor, int)"/>); <see cref="MaeFeaturizerOptions.Pooling"/>
    /// does not apply. Saved to a model zip or ONNX through its ONNX export, as the ViT featurizer.</summary>
    internal MaeFeaturizerTransformer(ConvNextV2 model, MaeFeaturizerOptions options)
    {
        options.Validate();
        ConvNext = model ?? throw new ArgumentNullException(nameof(model));
        ConvNextV2.CheckStages(options.Layers, nameof(options.Layers));
        if (model.NumClasses == 0 && model.head is null)
            throw new ArgumentException("This ConvNeXt V2 has no head norm (an FCMAE encoder): featurize Fcmae.ToEncoder().", nameof(model));
        Options = options;
        Normalization = (options.Normalization ?? PixelNormalization.Default(model.Config.InChannels)).Validate(model.Config.InChannels);
        Runner = new ConvNextRunner(model, options.Layers, options.Device, Normalization);
    }

    /// <summary>The ViT encoder; a ConvNeXt V2 featurizer has none (see <see cref="ConvNext"/>).</summary>
    public MaeEncoder Encoder => encoder ?? throw new InvalidOperationException("This featurizer runs a ConvNeXt V2 (see ConvNext); it has no ViT encoder.");
    readonly MaeEncoder? encoder;
    /// <summary>The ConvNeXt V2 this featurizer runs, or null for a ViT MAE encoder.</summary>
    public ConvNextV2? ConvNext { get; }
    public MaeFeaturizerOptions Options { get; }
    public PixelNormalization Normalization { get; }
    /// <summary>Width of the output vector.</summary>
    public int FeatureDim => Runner.OutputLength;
    internal ModelRunner Runner { get; }
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
        var options = new Interop.Onnx.MaeOnnxOptions
        {
            InputName = Options.InputColumnName, FeaturesName = Options.OutputColumnName, Pooling = Options.Pooling,
            Layers = Options.Layers, Normalization = Normalization,
        };
        if (ConvNext is not null) Interop.Onnx.MaeOnnxExport.Export(ConvNext, path, options);
        else Interop.Onnx.MaeOnnxExport.Export(Encoder, path, options);
    }
}
