using Mae.MLNet;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Evaluation;
using Mae.MLNet.FineTuning;
using Mae.MLNet.Pretraining;
using Mae.MLNet.Training;

namespace Microsoft.ML;

/// <summary>ML.NET catalog methods of Mae.MLNet.</summary>
public static class MaeCatalog
{
    /// <summary>Image file paths in <paramref name="inputColumnName"/> → <paramref name="outputColumnName"/>, the CHW
    /// pixels in [0, 1] of the reference's evaluation transform at <paramref name="imageSize"/> (shorter side to
    /// int(S / 0.875) up to 224 px, centre crop S — what the library's file source and validation use), built from
    /// ML.NET's own transforms: LoadImages → ResizeImages → ExtractPixels → a centre crop (a weightless ONNX graph), so
    /// that a saved pipeline (<c>mae finetune</c>'s zip) scores as the model was validated, without Mae.MLNet.
    /// ML.NET resamples with SkiaSharp, not PIL's bicubic, so the pixels are close to the file source's, not equal.
    /// <paramref name="channels"/>: 3 (RGB) or 1 (grey); relative paths are read from <paramref name="imageFolder"/>.</summary>
    public static IEstimator<ITransformer> MaeEvaluationPixels(this TransformsCatalog catalog, string outputColumnName, string inputColumnName,
        int imageSize, int channels = 3, string imageFolder = "")
        => EvaluationPixels.Create(catalog, outputColumnName, inputColumnName, imageSize, channels, imageFolder);

    /// <summary>Featurizes images with a frozen MAE encoder: adds <paramref name="outputColumnName"/>, a Single vector of
    /// the encoder's width. The input column holds CHW pixels as a known-size Single vector
    /// (<c>ExtractPixels(…, interleavePixelColors: false)</c>, scaled to [0, 1]) or MLImage values.</summary>
    public static IEstimator<MaeFeaturizerTransformer> MaeFeaturize(this TransformsCatalog catalog, string outputColumnName, string inputColumnName,
        MaeEncoder encoder, MaePooling pooling = MaePooling.Cls, int batchSize = 32, MaeDevice device = MaeDevice.Auto)
        => catalog.MaeFeaturize(new MaeFeaturizerOptions
        {
            OutputColumnName = outputColumnName, InputColumnName = inputColumnName, Pooling = pooling,
            BatchSize = batchSize, Device = device,
        }, encoder);

    /// <summary>As above, loading the encoder from a weights file (official .pth, timm/our .safetensors, or a Hugging
    /// Face folder); <paramref name="heads"/> (or a <paramref name="preset"/> name) gives the head counts when the file
    /// cannot tell them.</summary>
    public static IEstimator<MaeFeaturizerTransformer> MaeFeaturize(this TransformsCatalog catalog, string outputColumnName, string inputColumnName,
        string weightsPath, MaePooling pooling = MaePooling.Cls, int batchSize = 32, MaeDevice device = MaeDevice.Auto,
        string? preset = null, int? imageSize = null, MaeWeightFile.HeadCounts? heads = null)
        => catalog.MaeFeaturize(outputColumnName, inputColumnName, MaeWeightFile.LoadEncoder(weightsPath, preset: preset, imageSize: imageSize, heads: heads),
                                pooling, batchSize, device);

    /// <summary>Features of a ConvNeXt V2 (<see cref="MaeWeightFile.LoadConvNextV2"/>, e.g. timm's <c>convnextv2_*.fcmae</c>,
    /// or <see cref="Fcmae.ToEncoder"/> after FCMAE pre-training): the last stage's global average, through
    /// <c>head.norm</c>, a vector of <see cref="ConvNextV2Config.NumFeatures"/> floats per row. Same columns, batching and
    /// devices as the ViT featurizer; saving the pipeline to a zip is not available for it yet.</summary>
    public static IEstimator<MaeFeaturizerTransformer> MaeFeaturize(this TransformsCatalog catalog, MaeFeaturizerOptions options, ConvNextV2 model)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (options is null) throw new ArgumentNullException(nameof(options));
        return new MaeFeaturizerEstimator(model, options) { Host = MaeHost.Of(catalog) };
    }

    /// <summary>Pre-trains a masked autoencoder on the image column (no labels needed) with the paper's recipe and
    /// returns a featurizer over the trained encoder. <paramref name="model"/> defaults to <see cref="MaeConfig.Tiny32"/>.</summary>
    public static IEstimator<MaeFeaturizerTransformer> MaePretrain(this TransformsCatalog catalog, string outputColumnName, string inputColumnName,
        MaeConfig? model = null, int epochs = 100, int batchSize = 64, double maskRatio = 0.75, MaeDevice device = MaeDevice.Auto,
        long seed = 0, IProgress<Mae.MLNet.Pretraining.MaePretrainProgress>? progress = null)
    {
        var training = new Mae.MLNet.Pretraining.MaePretrainOptions
        {
            Epochs = epochs, BatchSize = batchSize, MaskRatio = maskRatio, Device = device, Seed = seed,
            WarmupEpochs = Math.Min(40, Math.Max(0, epochs / 10.0)),
        };
        var config = model ?? MaeConfig.Tiny32;
        return catalog.MaePretrain(new MaePretrainEstimatorOptions
        {
            OutputColumnName = outputColumnName, InputColumnName = inputColumnName, Model = config, Training = training,
            Progress = progress,
        });
    }

    /// <summary>Pre-trains with full control over the options.</summary>
    public static IEstimator<MaeFeaturizerTransformer> MaePretrain(this TransformsCatalog catalog, MaePretrainEstimatorOptions options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        return new MaePretrainEstimator(options) { Host = MaeHost.Of(catalog) };
    }

    /// <summary>Featurizes with full control over the options.</summary>
    public static IEstimator<MaeFeaturizerTransformer> MaeFeaturize(this TransformsCatalog catalog, MaeFeaturizerOptions options, MaeEncoder encoder)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        if (options is null) throw new ArgumentNullException(nameof(options));
        return new MaeFeaturizerEstimator(encoder, options) { Host = MaeHost.Of(catalog) };
    }

    /// <summary>Fine-tunes a pre-trained MAE encoder + linear head end to end (the paper's fine-tuning recipe) on an
    /// image column and a key-typed label column; the model adds <c>Score</c> (class probabilities) and
    /// <c>PredictedLabel</c> (key). <paramref name="encoder"/> is e.g. <c>MaePretrain</c>'s <c>featurizer.Encoder</c>
    /// or <c>MaeWeightFile.LoadEncoder(path)</c>; it is copied, not changed.</summary>
    public static MaeFineTuneTrainer MaeFineTune(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeEncoder encoder, string labelColumnName = "Label", string inputColumnName = "Pixels", int epochs = 50, int batchSize = 64,
        double? learningRate = null, MaeDevice device = MaeDevice.Auto, long seed = 0,
        IProgress<Mae.MLNet.FineTuning.MaeFineTuneProgress>? progress = null)
        => catalog.MaeFineTune(new MaeFineTuneTrainer.Options
        {
            Encoder = encoder ?? throw new ArgumentNullException(nameof(encoder)),
            LabelColumnName = labelColumnName, InputColumnName = inputColumnName, Progress = progress,
            Training = SimpleTraining(epochs, batchSize, learningRate, device, seed),
        });

    /// <summary>As above, starting from a weights file (official .pth, timm/our .safetensors, Hugging Face folder) with
    /// position-embedding interpolation to <paramref name="imageSize"/>.</summary>
    public static MaeFineTuneTrainer MaeFineTune(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string weightsPath, string labelColumnName = "Label", string inputColumnName = "Pixels", int epochs = 50, int batchSize = 64,
        double? learningRate = null, MaeDevice device = MaeDevice.Auto, long seed = 0, string? preset = null, int? imageSize = null,
        IProgress<Mae.MLNet.FineTuning.MaeFineTuneProgress>? progress = null, MaeWeightFile.HeadCounts? heads = null)
        => catalog.MaeFineTune(new MaeFineTuneTrainer.Options
        {
            WeightsPath = weightsPath ?? throw new ArgumentNullException(nameof(weightsPath)), Preset = preset, ImageSize = imageSize, Heads = heads,
            LabelColumnName = labelColumnName, InputColumnName = inputColumnName, Progress = progress,
            Training = SimpleTraining(epochs, batchSize, learningRate, device, seed),
        });

    /// <summary>Fine-tunes with full control over the options.</summary>
    public static MaeFineTuneTrainer MaeFineTune(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeFineTuneTrainer.Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        return new MaeFineTuneTrainer(options) { Host = MaeHost.Of(catalog) };
    }

    /// <summary>Trains an attentive probe on a frozen MAE encoder: one learned query cross-attends the encoder's patch
    /// tokens (the encoder's head count), a linear head classifies; the encoder is not changed. Its tokens are computed
    /// once (no augmentation) and the probe trains on them. The model adds <c>Score</c> and <c>PredictedLabel</c>.</summary>
    public static MaeAttentiveProbeTrainer MaeAttentiveProbe(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeEncoder encoder, string labelColumnName = "Label", string inputColumnName = "Pixels", int epochs = 20, int batchSize = 256,
        double learningRate = 1e-3, MaeDevice device = MaeDevice.Auto, long seed = 0,
        IProgress<Mae.MLNet.FineTuning.MaeFineTuneProgress>? progress = null)
        => catalog.MaeAttentiveProbe(new MaeAttentiveProbeTrainer.Options
        {
            Encoder = encoder ?? throw new ArgumentNullException(nameof(encoder)),
            LabelColumnName = labelColumnName, InputColumnName = inputColumnName, Progress = progress,
            Training = new Mae.MLNet.Evaluation.MaeAttentiveProbeOptions
            {
                Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate, Device = device, Seed = seed,
                WarmupEpochs = Math.Min(1, epochs / 10.0),
            },
        });

    /// <summary>Trains an attentive probe with full control over the options.</summary>
    public static MaeAttentiveProbeTrainer MaeAttentiveProbe(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        MaeAttentiveProbeTrainer.Options options)
    {
        if (catalog is null) throw new ArgumentNullException(nameof(catalog));
        return new MaeAttentiveProbeTrainer(options) { Host = MaeHost.Of(catalog) };
    }

    static Mae.MLNet.FineTuning.MaeFineTuneOptions SimpleTraining(int epochs, int batchSize, double? learningRate, MaeDevice device, long seed) => new()
    {
        Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate, Device = device, Seed = seed,
        WarmupEpochs = Math.Min(5, epochs / 10.0),
    };

    /// <summary>Checks the CRC-32 of every entry of the model zip at <paramref name="path"/> and the SHA-256 digest of
    /// every ONNX graph our transformers saved in it (ML.NET's plain <c>Load</c> checks neither); returns the graph
    /// entries verified. Throws <see cref="MaeModelFileException"/> naming the zip and the entry otherwise.</summary>
    public static IReadOnlyList<string> Verify(this ModelOperationsCatalog catalog, string path)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return MaeModelZip.Verify(path);
    }

    /// <summary><see cref="Verify(ModelOperationsCatalog, string)"/>; with <paramref name="requireSeal"/> a zip without a
    /// seal (<see cref="Seal"/>) is refused too, so that every entry ML.NET loads is verified, not only the graphs.</summary>
    public static IReadOnlyList<string> Verify(this ModelOperationsCatalog catalog, string path, bool requireSeal)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return MaeModelZip.Verify(path, requireSeal);
    }

    /// <summary><see cref="Verify(ModelOperationsCatalog, string)"/>, then ML.NET's <c>Load</c>, both from one copy of
    /// the file read once: what ML.NET loads is exactly the bytes that were checked.</summary>
    public static ITransformer LoadVerified(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
        => MaeModelZip.LoadVerified(catalog, path, out inputSchema);

    /// <summary><see cref="LoadVerified(ModelOperationsCatalog, string, out DataViewSchema)"/>; with
    /// <paramref name="requireSeal"/> an unsealed zip is refused.</summary>
    public static ITransformer LoadVerified(this ModelOperationsCatalog catalog, string path, bool requireSeal, out DataViewSchema inputSchema)
        => MaeModelZip.LoadVerified(catalog, path, requireSeal, out inputSchema);

    /// <summary>Seals a model zip saved by <c>Save</c>: adds an entry with the SHA-256 of every other entry, so that
    /// <c>Verify</c> / <c>LoadVerified</c> refuse any entry changed, added or removed afterwards (the pipeline outside
    /// the graphs included). <c>mae finetune</c> seals the zips it writes.</summary>
    public static void Seal(this ModelOperationsCatalog catalog, string path)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        MaeModelZip.Seal(path);
    }

    /// <summary>Sharded featurizing, rank <paramref name="rank"/> of <paramref name="worldSize"/>: rows
    /// <c>[r·n/W, (r + 1)·n/W)</c> of <paramref name="input"/>, a contiguous block (counted with a cursor when the view
    /// does not know its row count; empty when there are more ranks than rows).</summary>
    public static IDataView Shard(this DataOperationsCatalog catalog, IDataView input, int rank, int worldSize)
        => MaeShards.Shard(catalog, input, rank, worldSize);

    /// <summary>Sharded featurizing on several processes: applies <paramref name="pipeline"/> (e.g. a fitted
    /// <c>MaeFeaturize</c>) to this rank's block of <paramref name="input"/> (<see cref="Shard"/>), keeps
    /// <paramref name="keepColumns"/> (all columns when none are given; drop the pixel column to keep parts small) and
    /// writes <c>folder/part-RRRRR-of-WWWWW.idv</c> (ML.NET's binary format, atomically); returns its path after every
    /// rank has written its part (a barrier). <see cref="LoadShards"/> reads the parts back as one view.</summary>
    public static string SaveShard(this DataOperationsCatalog catalog, ITransformer pipeline, IDataView input, string folder,
        IMaeCollective collective, params string[] keepColumns)
        => MaeShards.SaveShard(catalog, pipeline, input, folder, collective, keepColumns);

    /// <summary>All parts <see cref="SaveShard"/> wrote in <paramref name="folder"/> as one view, in rank order (the
    /// input's row order); throws <see cref="System.IO.InvalidDataException"/> naming what is missing when the parts of
    /// one world size are not all there, or when parts of different world sizes are mixed.</summary>
    public static IDataView LoadShards(this DataOperationsCatalog catalog, string folder)
        => MaeShards.LoadShards(catalog, folder);
}
