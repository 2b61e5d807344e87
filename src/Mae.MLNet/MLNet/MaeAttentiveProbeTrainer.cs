using Mae.MLNet.Evaluation;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// Multiclass trainer of an attentive probe on a frozen MAE encoder (<see cref="MaeAttentiveProber"/>): one learned
/// query cross-attends the encoder's patch tokens, a linear head classifies the pooled vector. Takes an image column
/// and a key-typed label column as <see cref="MaeFineTuneTrainer"/> does (same column kinds, same checks); <c>Fit</c>
/// reads the labelled images, computes their tokens once (evaluation transform, no augmentation), trains the probe and
/// returns a <see cref="MaeAttentiveProbeTransformer"/> that adds <c>Score</c> and <c>PredictedLabel</c>.
/// </summary>
public sealed class MaeAttentiveProbeTrainer : IEstimator<MaeAttentiveProbeTransformer>
{
    const string Name = "MaeAttentiveProbe";

    /// <summary>Options of <c>MaeAttentiveProbe</c>.</summary>
    public sealed class Options : MaeImageClassifierTrainerOptions
    {
        /// <summary>The frozen encoder (e.g. <c>MaePretrain</c>'s <c>featurizer.Encoder</c> or <c>MaeWeightFile.LoadEncoder</c>).</summary>
        public MaeEncoder? Encoder { get; set; }
        /// <summary>How column values become [0, 1] pixels (Scale) and then model inputs (Mean/Std). Null: the
        /// pre-training default for the encoder's channels.</summary>
        public PixelNormalization? Normalization { get; set; }
        public MaeAttentiveProbeOptions Training { get; set; } = new();
        /// <summary>Optional validation data (same columns): accuracy per epoch.</summary>
        public IDataView? ValidationData { get; set; }
        public IProgress<MaeFineTuneProgress>? Progress { get; set; }
    }

    internal MaeAttentiveProbeTrainer(Options options)
    {
        TrainerOptions = options ?? throw new ArgumentNullException(nameof(options));
        if (options.Encoder is null) throw new ArgumentException($"{Name} needs Encoder (the frozen MAE encoder to probe).", nameof(options));
        options.CheckColumns();
        (options.Training ?? throw new ArgumentException("Training options must be set.", nameof(options))).Validate();
        (options.Normalization ?? PixelNormalization.Default(options.Encoder.Config.InChannels)).Validate(options.Encoder.Config.InChannels);
    }

    public Options TrainerOptions { get; }

    public MaeAttentiveProbeTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        var o = TrainerOptions;
        var encoder = o.Encoder!;
        var config = encoder.Config;
        var (labelColumn, labelType) = MaeFineTuneTrainer.BindData(input, o.ValidationData, o.LabelColumnName, o.InputColumnName, config, Name);
        int numClasses = checked((int)labelType.Count);
        var image = ImageColumn.Bind(input.Schema, o.InputColumnName, config);

        var normalization = (o.Normalization ?? PixelNormalization.Default(config.InChannels)).Validate(config.InChannels);
        float scale = image.ReadsUnitPixels ? 1f : normalization.Scale;
        // Path/bytes sources resize and centre-crop for evaluation, then normalise with these statistics.
        var inputOptions = (o.ImageInput ?? new MaeImageInputOptions()).With(new MaeAugmentationOptions
        {
            OutputSize = config.ImageSize, Channels = config.InChannels, Normalization = normalization with { Scale = 1f },
            RandomResizedCrop = false, HorizontalFlipProbability = 0,
        });
        var train = MaeFineTuneTrainer.Read(input, image, labelColumn, scale, config, "training data", inputOptions, Name);
        IMaeLabeledImageSource? validation = null;
        MaeAttentiveProber.Result result;
        try
        {
            validation = o.ValidationData is null ? null
                : MaeFineTuneTrainer.Read(o.ValidationData, ImageColumn.Bind(o.ValidationData.Schema, o.InputColumnName, config),
                    o.ValidationData.Schema[o.LabelColumnName], scale, config, "validation data", inputOptions, Name);
            result = new MaeAttentiveProber(o.Training).Train(encoder, train, validation, normalization, o.Progress, numClasses);
        }
        finally
        {
            (train as IDisposable)?.Dispose();
            (validation as IDisposable)?.Dispose();
        }

        return new MaeAttentiveProbeTransformer(encoder, result.Model, normalization with { Scale = scale }, o.InputColumnName, o.LabelColumnName,
            o.ScoreColumnName, o.PredictedLabelColumnName, labelType, input.Schema[o.LabelColumnName].Annotations, o.InferenceBatchSize,
            o.Training.Device)
        { Training = result, InputSchema = input.Schema, Host = Host };
    }

    /// <summary>The caller's ML.NET environment (set by the catalog), which saving the probe to a zip needs.</summary>
    internal MaeHost? Host { get; init; }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = TrainerOptions;
        return o.OutputSchema(inputSchema, 2, Name);
    }
}
