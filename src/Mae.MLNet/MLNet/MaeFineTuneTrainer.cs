using Mae.MLNet.FineTuning;
using Mae.MLNet.Input;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Mae.MLNet;

/// <summary>
/// Multiclass trainer that fine-tunes an MAE encoder + linear head end to end with the reference recipe
/// (<see cref="MaeFineTuner"/>) — a ViT, or a ConvNeXt V2 (FCMAE-pre-trained, timm's <c>*.fcmae</c> weights) — on an image column and a key-typed label column. <c>Fit</c> reads the labelled
/// images into memory, trains, and returns a <see cref="MaeClassifierTransformer"/> that adds <c>Score</c> and
/// <c>PredictedLabel</c> like ML.NET's multiclass trainers.
/// </summary>
public sealed class MaeFineTuneTrainer : IEstimator<MaeClassifierTransformer>
{
    /// <summary>Options of <c>MaeFineTune</c>. Exactly one starting point: <see cref="Model"/>, <see cref="Encoder"/>,
    /// <see cref="ConvNextModel"/>, <see cref="WeightsPath"/>, or <see cref="FromScratch"/> with <see cref="Config"/> or
    /// <see cref="ConvNextConfig"/>.</summary>
    public sealed class Options : MaeImageClassifierTrainerOptions
    {
        /// <summary>A classifier to fine-tune in place (its class count must equal the label's key count).</summary>
        public VitClassifier? Model { get; set; }
        /// <summary>A pre-trained encoder (e.g. <c>MaePretrain</c>'s <c>featurizer.Encoder</c>): a new classifier is built on it.</summary>
        public MaeEncoder? Encoder { get; set; }
        /// <summary>A ConvNeXt V2 to fine-tune: a classifier with the label's class count (at <see cref="ImageSize"/>, when
        /// given) is trained in place; an encoder
        /// (0 classes: <see cref="MaeWeightFile.LoadConvNextV2"/> of a timm <c>*.fcmae</c> file, <c>Fcmae.ToEncoder()</c>) or
        /// another class count gets a new head (<see cref="MaeFineTuner.FromEncoder(ConvNextV2, int, long, int?)"/>).</summary>
        public ConvNextV2? ConvNextModel { get; set; }
        /// <summary>Pre-trained or fine-tuned weights (official .pth, timm/our .safetensors, HF folder), loaded with
        /// <see cref="MaeWeightFile.LoadClassifier"/> (position embeddings interpolated to <see cref="ImageSize"/>); a
        /// ConvNeXt V2 file (timm's <c>*.fcmae</c> / <c>*.fcmae_ft_*</c>, the official checkpoints, <c>mae pretrain --model
        /// convnextv2-*</c>'s <c>convnextv2.safetensors</c>; told by its names) with <see cref="MaeWeightFile.LoadConvNextV2"/>,
        /// a new head unless it has the label's class count.</summary>
        public string? WeightsPath { get; set; }
        /// <summary>Architecture preset name for <see cref="WeightsPath"/> when the file cannot tell it
        /// (<c>convnextv2-atto</c> … for a ConvNeXt V2).</summary>
        public string? Preset { get; set; }
        /// <summary>Image size to build the model for from <see cref="WeightsPath"/> (null: the file's; a ConvNeXt V2 file
        /// does not store one: 224) or from <see cref="ConvNextModel"/> (null: its config's).</summary>
        public int? ImageSize { get; set; }
        /// <summary>Head counts for <see cref="WeightsPath"/> when the file cannot tell them (a width no preset has).</summary>
        public MaeWeightFile.HeadCounts? Heads { get; set; }
        /// <summary>Train a randomly initialised model of <see cref="Config"/> (only when asked: MAE's point is pre-training).</summary>
        public bool FromScratch { get; set; }
        public MaeConfig? Config { get; set; }
        /// <summary>A ConvNeXt V2 architecture: with <see cref="FromScratch"/> the model to build (instead of
        /// <see cref="Config"/>); with <see cref="WeightsPath"/> the file's architecture when its shapes should not decide it.</summary>
        public ConvNextV2Config? ConvNextConfig { get; set; }
        /// <summary>Global average pooling + fc_norm (the paper's default) or the cls token + norm.</summary>
        public bool GlobalPool { get; set; } = true;
        /// <summary>How column values become [0, 1] pixels (Scale) and then model inputs (Mean/Std). Null: the
        /// pre-training default for the model's channels. The training augmentation normalises with the same Mean/Std.</summary>
        public PixelNormalization? Normalization { get; set; }
        /// <summary>The recipe (defaults from main_finetune.py). Its Augmentation's Mean/Std are replaced by <see cref="Normalization"/>'s.</summary>
        public MaeFineTuneOptions Training { get; set; } = new();
        /// <summary>Optional validation data (same columns): accuracy per epoch, and the best epoch's weights are kept.</summary>
        public IDataView? ValidationData { get; set; }
        public IProgress<MaeFineTuneProgress>? Progress { get; set; }
        /// <summary>Stops <c>Fit</c> (an <see cref="OperationCanceledException"/>): with a checkpoint folder and a path or
        /// bytes column, after a checkpoint of the position reached, from which <c>Resume</c> continues exactly.</summary>
        public CancellationToken Cancellation { get; set; }
    }

    internal MaeFineTuneTrainer(Options options)
    {
        TrainerOptions = options ?? throw new ArgumentNullException(nameof(options));
        options.CheckColumns();
        int starts = (options.Model is null ? 0 : 1) + (options.Encoder is null ? 0 : 1) + (options.ConvNextModel is null ? 0 : 1)
                     + (options.WeightsPath is null ? 0 : 1) + (options.FromScratch ? 1 : 0);
        if (starts != 1)
            throw new ArgumentException(
                $"MaeFineTune needs exactly one starting point: Model, Encoder, ConvNextModel, WeightsPath, or FromScratch with Config or ConvNextConfig; {(starts == 0 ? "none was given" : $"{starts} were given")}.", nameof(options));
        if (options.FromScratch && (options.Config is null) == (options.ConvNextConfig is null))
            throw new ArgumentException("FromScratch needs exactly one of Config (a ViT) and ConvNextConfig (a ConvNeXt V2): the architecture to build.", nameof(options));
        if (options.ConvNextConfig is not null && options.WeightsPath is null && !options.FromScratch)
            throw new ArgumentException("ConvNextConfig applies to FromScratch or WeightsPath; the other starting points bring their own architecture.", nameof(options));
        options.ConvNextConfig?.Validate();
        (options.Training ?? throw new ArgumentException("Training options must be set.", nameof(options))).Validate();
        if (ModelConfig is MaeConfig config) (options.Normalization ?? PixelNormalization.Default(config.InChannels)).Validate(config.InChannels);
    }

    public Options TrainerOptions { get; }
    /// <summary>The caller's ML.NET environment, from the catalog that made the estimator (for saving).</summary>
    internal MaeHost? Host { get; init; }

    MaeConfig? ModelConfig => TrainerOptions.Model?.Config ?? TrainerOptions.Encoder?.Config
        ?? (TrainerOptions.ConvNextModel is { } c ? (c.Config with { ImageSize = TrainerOptions.ImageSize ?? c.Config.ImageSize }).Validate().InputGeometry : null)
        ?? (TrainerOptions.FromScratch ? TrainerOptions.ConvNextConfig?.InputGeometry ?? TrainerOptions.Config!.Validate() : null);

    public MaeClassifierTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        var o = TrainerOptions;
        // The image columns are checked against the model before loading weights or reading rows, when it is known.
        var (labelColumn, labelType) = BindData(input, o.ValidationData, o.LabelColumnName, o.InputColumnName, ModelConfig, "MaeFineTune");
        int numClasses = checked((int)labelType.Count);
        if (o.Model is not null && o.Model.NumClasses != numClasses)
            throw new ArgumentException(
                $"The classifier has {o.Model.NumClasses} classes but label column '{o.LabelColumnName}' has {numClasses} key values.", nameof(input));

        var start = o.Model is not null ? FineTuneStart.Of(o.Model)
            : o.Encoder is not null ? FineTuneStart.Of(MaeFineTuner.FromEncoder(o.Encoder, numClasses, o.GlobalPool, o.Training.Seed))
            : o.ConvNextModel is not null ? FineTuneStart.Of(InPlace(o.ConvNextModel, numClasses, o.ImageSize) ? o.ConvNextModel
                : MaeFineTuner.FromEncoder(o.ConvNextModel, numClasses, o.Training.Seed, o.ImageSize))
            : o.WeightsPath is not null ? LoadWeights(o, numClasses)
            : o.ConvNextConfig is not null ? FineTuneStart.Of(MaeFineTuner.FromScratch(o.ConvNextConfig, numClasses, o.Training.Seed))
            : FineTuneStart.Of(MaeFineTuner.FromScratch(o.Config!, numClasses, o.GlobalPool, o.Training.Seed));
        var config = start.Net.Geometry;
        var image = ImageColumn.Bind(input.Schema, o.InputColumnName, config);
        var normalization = (o.Normalization ?? PixelNormalization.Default(config.InChannels)).Validate(config.InChannels);
        float scale = image.ReadsUnitPixels ? 1f : normalization.Scale;

        var training = o.Training.Clone();
        // The pixels are read in [0, 1] (scaled above); the augmentation normalises them with this normalisation.
        training.Augmentation = training.ResolveAugmentation(config).With(normalization with { Scale = 1f });
        var inputOptions = (o.ImageInput ?? new MaeImageInputOptions()).With(training.Augmentation);
        var train = Read(input, image, labelColumn, scale, config, "training data", inputOptions);
        var validation = o.ValidationData is null ? null
            : Read(o.ValidationData, ImageColumn.Bind(o.ValidationData.Schema, o.InputColumnName, config),
                   o.ValidationData.Schema[o.LabelColumnName], scale, config, "validation data", inputOptions);
        MaeFineTuneResult result;
        try
        {
            var tuner = new MaeFineTuner(training);
            result = start.Vit is not null ? tuner.Train(start.Vit, train, validation, o.Progress, o.Cancellation)
                : tuner.Train(start.ConvNext!, train, validation, o.Progress, o.Cancellation);
            var skipped = new[] { train, validation }.OfType<MaeLabeledImageFileSource>().SelectMany(s => s.SkippedFiles).ToList();
            if (skipped.Count > 0) result = result with { SkippedFiles = skipped };
        }
        finally
        {
            (train as IDisposable)?.Dispose();
            (validation as IDisposable)?.Dispose();
        }

        var annotations = input.Schema[o.LabelColumnName].Annotations;
        return start.Vit is not null
            ? new MaeClassifierTransformer(start.Vit, normalization with { Scale = scale }, o.InputColumnName, o.LabelColumnName,
                o.ScoreColumnName, o.PredictedLabelColumnName, labelType, annotations, o.InferenceBatchSize, training.Device)
            { FineTuning = result, InputSchema = input.Schema, Host = Host }
            : new MaeClassifierTransformer(start.ConvNext!, normalization with { Scale = scale }, o.InputColumnName, o.LabelColumnName,
                o.ScoreColumnName, o.PredictedLabelColumnName, labelType, annotations, o.InferenceBatchSize, training.Device)
            { FineTuning = result, InputSchema = input.Schema, Host = Host };
    }

    /// <summary>The classifier a fit starts from: a ViT or a ConvNeXt V2.</summary>
    sealed record FineTuneStart(VitClassifier? Vit, ConvNextV2? ConvNext, FineTuneNet Net)
    {
        public static FineTuneStart Of(VitClassifier m) => new(m, null, FineTuneNet.Of(m));
        public static FineTuneStart Of(ConvNextV2 m) => new(null, m, FineTuneNet.Of(m));
    }

    /// <summary>The WeightsPath start. libtorch is seeded with the recipe's seed first, as <see cref="MaeFineTuner.FromEncoder(MaeEncoder, int, bool, long, int?)"/>
    /// and <see cref="MaeFineTuner.FromScratch(MaeConfig, int, bool, long)"/> do, so that the new fc_norm and head repeat from run to run.
    /// A ConvNeXt V2 file (its names tell it, or a ConvNeXt preset or config) is loaded as it is, then given a new head
    /// unless it has the label's class count (and kept at <see cref="Options.ImageSize"/>).</summary>
    static FineTuneStart LoadWeights(Options o, int numClasses)
    {
        bool convNextPreset = o.Preset?.StartsWith("convnextv2", StringComparison.OrdinalIgnoreCase) == true;
        if (o.ConvNextConfig is null && !convNextPreset && !MaeWeightFile.HoldsConvNextV2(o.WeightsPath!))
        {
            TorchRuntime.Seed(o.Training.Seed);
            return FineTuneStart.Of(MaeWeightFile.LoadClassifier(o.WeightsPath!, numClasses, o.GlobalPool, preset: o.Preset, imageSize: o.ImageSize, heads: o.Heads));
        }
        var config = o.ConvNextConfig ?? (convNextPreset ? ConvNextV2Config.Preset(o.Preset!) : null);
        if (config is not null && o.ImageSize is int size) config = (config with { ImageSize = size }).Validate();
        var loaded = MaeWeightFile.LoadConvNextV2(o.WeightsPath!, config);
        if (InPlace(loaded, numClasses, o.ImageSize)) return FineTuneStart.Of(loaded);
        using (loaded) return FineTuneStart.Of(MaeFineTuner.FromEncoder(loaded, numClasses, o.Training.Seed, o.ImageSize));
    }

    /// <summary>A ConvNeXt V2 is fine-tuned as it is when it has the label's class count at the asked image size; otherwise
    /// a classifier is built on it (<see cref="MaeFineTuner.FromEncoder(ConvNextV2, int, long, int?)"/>).</summary>
    static bool InPlace(ConvNextV2 model, int numClasses, int? imageSize)
        => model.NumClasses == numClasses && (imageSize is null || imageSize == model.Config.ImageSize);

    /// <summary>The checks a classifier trainer makes before reading a row (the attentive probe makes them here too): the
    /// training label (<see cref="BindLabel"/>), the validation label with the same key count, both image columns
    /// against <paramref name="config"/> when the model is known, and rows to train on.</summary>
    internal static (DataViewSchema.Column Column, KeyDataViewType Type) BindData(IDataView input, IDataView? validation, string labelColumnName,
        string inputColumnName, MaeConfig? config, string trainer)
    {
        var (labelColumn, labelType) = BindLabel(input.Schema, labelColumnName, "training data", trainer);
        if (config is not null) ImageColumn.Bind(input.Schema, inputColumnName, config);
        if (validation is not null)
        {
            var (_, valType) = BindLabel(validation.Schema, labelColumnName, "validation data", trainer);
            if (valType.Count != labelType.Count)
                throw new ArgumentException(
                    $"Label column '{labelColumnName}' has {labelType.Count} key values in the training data but {valType.Count} in the validation data; map both with the same MapValueToKey transformer.", nameof(input));
            if (config is not null) ImageColumn.Bind(validation.Schema, inputColumnName, config);
        }
        if (input.GetRowCount() == 0)
            throw new ArgumentException($"The training data has no rows; {trainer} needs labelled images.", nameof(input));
        return (labelColumn, labelType);
    }

    /// <summary>The key-typed label column (≥ 2 key values) of <paramref name="schema"/>; <paramref name="trainer"/> names
    /// the caller in the messages (the attentive probe binds its label here too).</summary>
    internal static (DataViewSchema.Column Column, KeyDataViewType Type) BindLabel(DataViewSchema schema, string name, string what, string trainer = "MaeFineTune")
    {
        if (schema.GetColumnOrNull(name) is not DataViewSchema.Column column)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Label column '{name}' was not found in the {what}. Available columns: {string.Join(", ", schema.Select(c => $"'{c.Name}'"))}.");
        if (column.Type is not KeyDataViewType key)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Label column '{name}' has type {column.Type}; {trainer} expects a key type (map the labels with MapValueToKey first).");
        if (key.Count < 2)
            throw new ArgumentOutOfRangeException(nameof(schema),
                $"Label column '{name}' has {key.Count} key value(s); a classifier needs at least 2 classes.");
        if (key.Count > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(schema), $"Label column '{name}' has too many key values ({key.Count}).");
        return (column, key);
    }

    /// <summary>Reads the labelled images into memory (rows with a missing label are skipped); paths and encoded
    /// bytes become a file source that decodes them in parallel, epoch by epoch.</summary>
    internal static IMaeLabeledImageSource Read(IDataView data, ImageColumn image, DataViewSchema.Column label, float scale, MaeConfig config, string what,
        MaeImageInputOptions inputOptions, string trainer = "MaeFineTune")
    {
        if (image.IsEncoded)
        {
            var keys = new List<long>();
            var (paths, bytes, names) = image.ReadEncoded(data, new[] { label }, cursor =>
            {
                var getLabel = KeyColumn.Reader(cursor, label);
                return () =>
                {
                    ulong key = getLabel();
                    if (key == 0) return false;
                    keys.Add((long)key - 1);
                    return true;
                };
            });
            if (keys.Count == 0) throw new ArgumentException($"The {what} has no rows with a label; {trainer} needs labelled images.");
            var options = inputOptions.Validate();
            return paths is not null ? MaeLabeledImageFileSource.FromPaths(paths, keys, options)
                : MaeLabeledImageFileSource.FromEncoded(bytes!, keys, names, options);
        }

        var pixels = new List<float[]>();
        var labels = new List<long>();
        using (var cursor = data.GetRowCursor(new[] { image.Column, label }))
        {
            var read = image.MakeReader(cursor);
            var getLabel = KeyColumn.Reader(cursor, label);
            while (cursor.MoveNext())
            {
                ulong key = getLabel();
                if (key == 0) continue;
                var p = new float[image.Length];
                read(p, 0);
                if (scale != 1f) for (int i = 0; i < p.Length; i++) p[i] *= scale;
                pixels.Add(p);
                labels.Add((long)key - 1);
            }
        }
        if (pixels.Count == 0)
            throw new ArgumentException($"The {what} has no rows with a label; {trainer} needs labelled images.");
        return MaeLabeledImageSource.FromArrays(pixels, labels, new MaeImageShape(config.InChannels, config.ImageSize, config.ImageSize));
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = TrainerOptions;
        return o.OutputSchema(inputSchema, o.Model?.NumClasses ?? 2, "MaeFineTune");
    }
}
