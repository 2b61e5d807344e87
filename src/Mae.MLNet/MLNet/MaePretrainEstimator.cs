using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Microsoft.ML;
using Microsoft.ML.Data;
using Mae.MLNet.Pretraining;

namespace Mae.MLNet;

/// <summary>Options of <c>MaePretrain</c>: the architecture, the paper's pre-training recipe, the augmentation, and
/// how the resulting featurizer pools and batches.</summary>
public sealed class MaePretrainEstimatorOptions
{
    public string OutputColumnName { get; set; } = "Features";
    /// <summary>CHW Single vector in [0, 1] (<c>ExtractPixels(…, interleavePixelColors: false, scaleImage: 1f / 255)</c>),
    /// MLImage, image file paths (text) or encoded image bytes (<c>LoadRawImageBytes</c>). Paths and bytes are decoded
    /// by parallel workers and cropped at random on the original image (<see cref="ImageInput"/>); the featurizer then
    /// reads them through the reference's evaluation transform (resize + centre crop).</summary>
    public string InputColumnName { get; set; } = "Pixels";
    /// <summary>Workers, prefetch, bad-file policy and limits for path/bytes columns (its Augmentation is replaced by
    /// <see cref="Augmentation"/>). Null: the defaults.</summary>
    public MaeImageInputOptions? ImageInput { get; set; }
    /// <summary>The MAE to train; its image size and channels must match the column.</summary>
    public MaeConfig Model { get; set; } = MaeConfig.Tiny32;
    /// <summary>Set to pre-train a ConvNeXt V2 with FCMAE instead of <see cref="Model"/> (the same recipe, input and
    /// engine; <see cref="MaePretrainOptions.MaskRatio"/> is the share of 32-px cells removed, officially 0.6): the
    /// featurizer then gives the last stage's pooled features (<see cref="MaeFeaturizerTransformer.ConvNext"/>; with
    /// <see cref="Layers"/> = n, 1–4, the last n stages'; <see cref="Pooling"/> does not apply).</summary>
    public ConvNextV2Config? ConvNextModel { get; set; }
    /// <summary>The recipe (defaults from main_pretrain.py).</summary>
    public MaePretrainOptions Training { get; set; } = new();
    /// <summary>RandomResizedCrop + flip + normalisation; null = the reference's defaults for the model's size and
    /// channels. Its mean/std become the featurizer's normalisation.</summary>
    public MaeAugmentationOptions? Augmentation { get; set; }
    /// <summary>Multiplies vector-column values first, so that they are in [0, 1] (1 when ExtractPixels scaled them).</summary>
    public float PixelScale { get; set; } = 1f;
    public MaePooling Pooling { get; set; } = MaePooling.Cls;
    /// <summary>The featurizer's <see cref="MaeFeaturizerOptions.Layers"/>: pooled vectors of the last n blocks, concatenated.</summary>
    public int Layers { get; set; } = 1;
    public int FeaturizeBatchSize { get; set; } = 32;
    /// <summary>Images held for shuffling while streaming from the data view.</summary>
    public int ShuffleBufferSize { get; set; } = 8192;
    public IProgress<MaePretrainProgress>? Progress { get; set; }
}

/// <summary>
/// Pre-trains a masked autoencoder on an image column (no labels) and returns a <see cref="MaeFeaturizerTransformer"/>
/// over the trained encoder; the trained MAE and the run's losses are on it as
/// <see cref="MaeFeaturizerTransformer.Autoencoder"/> and <see cref="MaeFeaturizerTransformer.Pretraining"/>.
/// </summary>
internal sealed class MaePretrainEstimator : IEstimator<MaeFeaturizerTransformer>
{
    internal MaePretrainEstimator(MaePretrainEstimatorOptions options)
    {
        Options = options ?? throw new ArgumentNullException(nameof(options));
        var config = Geometry;
        if (options.ConvNextModel is { } convNext)
        {
            options.Training.Validate(convNext);
            ConvNextV2.CheckStages(options.Layers, nameof(options.Layers));
        }
        else options.Training.Validate(config.Validate());
        Augmentation = (options.Augmentation ?? new MaeAugmentationOptions
        {
            OutputSize = config.ImageSize,
            Channels = config.InChannels,
        }).Validate();
        if (Augmentation.OutputSize != config.ImageSize || Augmentation.Channels != config.InChannels)
            throw new ArgumentException(
                $"The augmentation produces {Augmentation.Channels}×{Augmentation.OutputSize}×{Augmentation.OutputSize} images; the model takes {config.InChannels}×{config.ImageSize}×{config.ImageSize}.");
        if (!(options.PixelScale > 0) || !float.IsFinite(options.PixelScale))
            throw new ArgumentOutOfRangeException(nameof(options), options.PixelScale, "PixelScale must be a positive finite number.");
        new MaeFeaturizerOptions { OutputColumnName = options.OutputColumnName, InputColumnName = options.InputColumnName, BatchSize = options.FeaturizeBatchSize, Pooling = options.Pooling, Layers = options.Layers }.Validate();
        if (options.ConvNextModel is null) MaeEncoder.CheckLayers(options.Layers, options.Model, nameof(options.Layers));
    }

    /// <summary>The images the model takes: the ViT's config, or the ConvNeXt's size and channels.</summary>
    MaeConfig Geometry => Options.ConvNextModel is { } c ? c.Validate().InputGeometry : Options.Model;

    public MaePretrainEstimatorOptions Options { get; }
    /// <summary>The caller's ML.NET environment, from the catalog that made the estimator (for saving).</summary>
    internal MaeHost? Host { get; init; }
    MaeAugmentationOptions Augmentation { get; }

    public MaeFeaturizerTransformer Fit(IDataView input)
    {
        if (input is null) throw new ArgumentNullException(nameof(input));
        var config = Geometry;
        var column = ImageColumn.Bind(input.Schema, Options.InputColumnName, config);
        long count = DataViewRows.Count(input);
        if (count == 0) throw new ArgumentException("The data view has no rows; MaePretrain needs images to learn from.", nameof(input));

        var shape = new MaeImageShape(config.InChannels, config.ImageSize, config.ImageSize);
        float scale = column.ReadsUnitPixels ? 1f : Options.PixelScale;
        var training = Options.Training.Clone();
        IMaeImageSource source;
        if (column.IsEncoded)
        {
            // Files or bytes: decoded in parallel, cropped on the original image by the source itself.
            if (training.Transform is not null)
                throw new ArgumentException(
                    $"Column '{column.Column.Name}' holds encoded images, which the image source crops, flips and normalises itself (Augmentation); leave Training.Transform null.", nameof(input));
            var inputOptions = (Options.ImageInput ?? new MaeImageInputOptions()).With(Augmentation).Validate();
            var (paths, bytes, names) = column.ReadEncoded(input, Array.Empty<DataViewSchema.Column>());
            if (names.Count == 0) throw new ArgumentException("The data view has no rows; MaePretrain needs images to learn from.", nameof(input));
            source = paths is not null ? MaeImageFileSource.FromPaths(paths, inputOptions) : MaeImageFileSource.FromEncoded(bytes!, names, inputOptions);
        }
        else
        {
            source = new MaeStreamingImageSource(() => ReadImages(input, column, scale), shape, count, Options.ShuffleBufferSize);
            training.Transform ??= new MaePretrainAugmentation(Augmentation);
        }
        var normalization = Augmentation.ResolvedNormalization() with { Scale = scale };
        if (Options.ConvNextModel is { } convNext)
        {
            using var fcmae = MaePretrainer.CreateModel(convNext, training);
            var trained = new MaePretrainer(training).Train(fcmae, source, Options.Progress);
            return new MaeFeaturizerTransformer(fcmae.ToEncoder(), new MaeFeaturizerOptions
            {
                OutputColumnName = Options.OutputColumnName, InputColumnName = Options.InputColumnName,
                BatchSize = Options.FeaturizeBatchSize, Device = training.Device, Normalization = normalization,
            })
            { Pretraining = trained, InputSchema = input.Schema, Host = Host };
        }
        var model = MaePretrainer.CreateModel(config, training);
        var result = new MaePretrainer(training).Train(model, source, Options.Progress);

        var featurizer = new MaeFeaturizerTransformer(model.Encoder, new MaeFeaturizerOptions
        {
            OutputColumnName = Options.OutputColumnName, InputColumnName = Options.InputColumnName, Pooling = Options.Pooling,
            Layers = Options.Layers, BatchSize = Options.FeaturizeBatchSize, Device = training.Device, Normalization = normalization,
        })
        { Autoencoder = model, Pretraining = result, InputSchema = input.Schema, Host = Host };
        return featurizer;
    }

    static IEnumerable<float[]> ReadImages(IDataView input, ImageColumn column, float scale)
    {
        using var cursor = input.GetRowCursor(new[] { input.Schema[column.Column.Index] });
        var read = column.MakeReader(cursor);
        while (cursor.MoveNext())
        {
            var pixels = new float[column.Length];
            read(pixels, 0);
            if (scale != 1f) for (int i = 0; i < pixels.Length; i++) pixels[i] *= scale;
            yield return pixels;
        }
    }

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
        => MaeFeaturizerEstimator.OutputSchema(inputSchema,
            new MaeFeaturizerOptions { OutputColumnName = Options.OutputColumnName, InputColumnName = Options.InputColumnName },
            Options.ConvNextModel is { } c ? c.FeatureWidth(Options.Layers) : MaeEncoder.FeatureWidth(Options.Model, Options.Pooling, Options.Layers));
}
