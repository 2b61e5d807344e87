using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// Pre-training images read from files (or encoded bytes): decoded by parallel workers, randomly cropped on the
/// original image, resized with PIL's bicubic filter, flipped and normalised, a few batches ahead of the trainer.
/// Deterministic: a batch depends only on the <see cref="MaeEpochPlan"/>, not on the worker count or timing.
/// <code>
/// var source = MaeImageFileSource.FromFolder("photos/", new MaeImageInputOptions { Augmentation = { OutputSize = 224 } });
/// new MaePretrainer(new MaePretrainOptions { Epochs = 400 }).Train(model, source);
/// </code>
/// </summary>
public sealed class MaeImageFileSource : IMaeImageSource, IMaeModelInputSource
{
    /// <summary>A bad image that was skipped (<see cref="MaeImageInputOptions.SkipBadFiles"/>) and why (the reason of
    /// its <see cref="MaeImageFileException"/>); the file sources and the fine-tuning result list them.</summary>
    public sealed record SkippedFile(string FileName, string Reason);

    readonly ImageBatchReader reader;

    MaeImageFileSource(EncodedImageList images, MaeImageInputOptions? options)
    {
        reader = new ImageBatchReader(images, null, (options ?? new MaeImageInputOptions()).Validate());
    }

    /// <summary>Every image file under <paramref name="folder"/>, sub-folders included (<see cref="MaeImageFolder.ListImages"/>).</summary>
    public static MaeImageFileSource FromFolder(string folder, MaeImageInputOptions? options = null)
        => new(new FileImageList(MaeImageFolder.ListImages(folder)), options);

    /// <summary>The given image files (checked when read).</summary>
    public static MaeImageFileSource FromPaths(IEnumerable<string> paths, MaeImageInputOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var list = paths.ToList();
        for (int i = 0; i < list.Count; i++)
            if (string.IsNullOrEmpty(list[i])) throw new ArgumentException($"Path {i} is null or empty; expected an image file path.", nameof(paths));
        return new(new FileImageList(list), options);
    }

    /// <summary>Encoded images in memory (JPEG/PNG/… bytes, as ML.NET's <c>LoadRawImageBytes</c> gives them);
    /// <paramref name="names"/> (optional) name them in error messages.</summary>
    public static MaeImageFileSource FromEncoded(IReadOnlyList<byte[]> images, IReadOnlyList<string>? names = null, MaeImageInputOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (names is not null && names.Count != images.Count)
            throw new ArgumentException($"There are {images.Count} images but {names.Count} names.", nameof(names));
        return new(new BytesImageList(images, names), options);
    }

    internal ImageBatchReader Reader => reader;
    public long Count => reader.Images.Count;
    public MaeImageShape Shape => reader.Shape;
    /// <summary>The options in use.</summary>
    public MaeImageInputOptions Options => reader.Options;
    /// <summary>Bad files replaced so far (only with <see cref="MaeImageInputOptions.SkipBadFiles"/>), in index order.</summary>
    public IReadOnlyList<SkippedFile> SkippedFiles => reader.Skipped;

    /// <summary>Data-parallel training reads this source: a plan with <see cref="MaeEpochPlan.WorldSize"/> &gt; 1
    /// yields this rank's <see cref="MaeDataShard.Positions"/> of the epoch's order.</summary>
    public bool ReadsShards => true;

    /// <summary>The batches of one epoch (see <see cref="IMaeImageSource.Batches"/>), pinned when the plan's target is CUDA.</summary>
    public IEnumerable<Tensor> Batches(MaeEpochPlan plan) => reader.Batches(plan).Select(b => b.Images);
}
