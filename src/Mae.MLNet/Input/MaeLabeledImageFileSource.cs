using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// Labelled images read from files (or encoded bytes) for fine-tuning and evaluation, prepared like
/// <see cref="MaeImageFileSource"/>: training plans crop and flip at random, evaluation plans resize and centre-crop.
/// <code>var train = MaeLabeledImageFileSource.FromClassFolders("train/");   // train/cat/*.jpg, train/dog/*.jpg …</code>
/// </summary>
public sealed class MaeLabeledImageFileSource : IMaeLabeledImageSource, IMaeModelInputSource
{
    readonly ImageBatchReader reader;

    MaeLabeledImageFileSource(EncodedImageList images, long[] labels, IReadOnlyList<string>? classes, MaeImageInputOptions? options)
    {
        if (labels.Length != images.Count)
            throw new ArgumentException($"There are {images.Count} images but {labels.Length} labels; expected one label per image.", nameof(labels));
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] < 0 || labels[i] > int.MaxValue - 1)
                throw new ArgumentOutOfRangeException(nameof(labels), labels[i], $"Label {i} ({images.Name(i)}) is {labels[i]}; labels must be class indices ≥ 0.");
        reader = new ImageBatchReader(images, labels, (options ?? new MaeImageInputOptions()).Validate());
        LabelBound = labels.Length == 0 ? 0 : (int)labels.Max() + 1;
        Classes = classes;
    }

    /// <summary>torchvision's <c>ImageFolder</c> layout: one sub-folder per class, classes in sorted order.</summary>
    public static MaeLabeledImageFileSource FromClassFolders(string folder, MaeImageInputOptions? options = null)
    {
        var (paths, labels, classes) = MaeImageFolder.ListClasses(folder);
        return new(new FileImageList(paths), labels, classes, options);
    }

    /// <summary>The given files and their class indices.</summary>
    public static MaeLabeledImageFileSource FromPaths(IEnumerable<string> paths, IEnumerable<long> labels, MaeImageInputOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(labels);
        return new(new FileImageList(paths.ToList()), labels.ToArray(), null, options);
    }

    /// <summary>Encoded images in memory and their class indices.</summary>
    public static MaeLabeledImageFileSource FromEncoded(IReadOnlyList<byte[]> images, IEnumerable<long> labels,
        IReadOnlyList<string>? names = null, MaeImageInputOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        return new(new BytesImageList(images, names), labels.ToArray(), null, options);
    }

    public long Count => reader.Images.Count;
    public MaeImageShape Shape => reader.Shape;
    public int LabelBound { get; }
    /// <summary>Class names by index (from the folder layout), or null.</summary>
    public IReadOnlyList<string>? Classes { get; }
    public MaeImageInputOptions Options => reader.Options;
    /// <summary>Bad files replaced so far (only with <see cref="MaeImageInputOptions.SkipBadFiles"/>), in index order.</summary>
    public IReadOnlyList<MaeImageFileSource.SkippedFile> SkippedFiles => reader.Skipped;

    /// <summary>As <see cref="MaeImageFileSource.ReadsShards"/>.</summary>
    public bool ReadsShards => true;

    public IEnumerable<(Tensor Images, Tensor Labels)> Batches(MaeEpochPlan plan)
        => reader.Batches(plan).Select(b => (b.Images, tensor(b.Labels, ScalarType.Int64)));
}
