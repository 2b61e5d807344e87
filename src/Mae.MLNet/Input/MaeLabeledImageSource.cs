using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>Labelled images in memory (one float32 CPU tensor and a label array), in batches as <see cref="MaeImageSource"/>.</summary>
public sealed class MaeLabeledImageSource : IMaeLabeledImageSource, IDisposable
{
    readonly MaeImageSource images;
    readonly long[] labels;

    /// <summary>Copies <paramref name="images"/> [N, C, H, W] and checks one non-negative label per image.</summary>
    public MaeLabeledImageSource(Tensor images, IReadOnlyList<long> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        this.images = MaeImageSource.FromTensor(images);
        if (labels.Count != this.images.Count)
        {
            this.images.Dispose();
            throw new ArgumentException($"There are {this.images.Count} images but {labels.Count} labels; expected one label per image.", nameof(labels));
        }
        for (int i = 0; i < labels.Count; i++)
            if (labels[i] < 0 || labels[i] > int.MaxValue - 1)
            {
                this.images.Dispose();
                throw new ArgumentOutOfRangeException(nameof(labels), labels[i], $"Label {i} is {labels[i]}; labels must be class indices ≥ 0.");
            }
        this.labels = labels.ToArray();
        LabelBound = this.labels.Length == 0 ? 0 : (int)this.labels.Max() + 1;
    }

    /// <summary>From CHW float arrays of <paramref name="shape"/> and their labels.</summary>
    public static MaeLabeledImageSource FromArrays(IEnumerable<float[]> images, IEnumerable<long> labels, MaeImageShape shape)
    {
        using var source = MaeImageSource.FromArrays(images, shape);
        using var all = source.GetBatch(Enumerable.Range(0, checked((int)source.Count)).Select(i => (long)i).ToArray());
        return new MaeLabeledImageSource(all, labels.ToList());
    }

    public long Count => images.Count;
    public MaeImageShape Shape => images.Shape;
    public int LabelBound { get; }

    /// <summary>The images [indices.Length, C, H, W] and labels [indices.Length] at <paramref name="indices"/>.</summary>
    internal (Tensor Images, Tensor Labels) GetBatch(long[] indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        foreach (var i in indices)
            if (i < 0 || i >= Count) throw new ArgumentOutOfRangeException(nameof(indices), i, $"Image index {i} is outside 0 … {Count - 1}.");
        return (images.GetBatch(indices), tensor(indices.Select(i => labels[i]).ToArray(), dtype: int64));
    }

    /// <summary>Data-parallel training reads this source (as <see cref="MaeImageSource.ReadsShards"/>).</summary>
    public bool ReadsShards => true;

    public IEnumerable<(Tensor Images, Tensor Labels)> Batches(MaeEpochPlan plan) => MaeImageSource.Indices(Count, plan).Select(GetBatch);

    public void Dispose() => images.Dispose();
}
