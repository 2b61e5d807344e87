using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// Images for pre-training: a known count of same-sized CHW float images, read one epoch at a time in batches made
/// from a <see cref="MaeEpochPlan"/> — the one way every source (in memory, files, an ML.NET column) makes batches.
/// Use <see cref="MaeImageSource"/> for images in memory and <see cref="MaeImageFileSource"/> for files.
/// </summary>
public interface IMaeImageSource
{
    /// <summary>Number of images in one epoch.</summary>
    long Count { get; }

    /// <summary>Shape of every image.</summary>
    MaeImageShape Shape { get; }

    /// <summary>Whether <see cref="Batches"/> honours <see cref="MaeEpochPlan.Rank"/> / <see cref="MaeEpochPlan.WorldSize"/>
    /// (reads only this rank's <see cref="MaeEpochPlan"/> share of the epoch's order); data-parallel training with more
    /// than one rank refuses a source that does not.</summary>
    bool ReadsShards => false;

    /// <summary>
    /// The batches [B, C, H, W] float32 on the CPU of one epoch, from batch <see cref="MaeEpochPlan.SkipBatches"/> on,
    /// as a pure function of the plan: a training plan gives <c>Count / BatchSize</c> full batches in the order drawn
    /// from (<see cref="MaeEpochPlan.Seed"/>, <see cref="MaeEpochPlan.Epoch"/>) (an incomplete last batch dropped, as
    /// the reference's <c>drop_last=True</c>); an evaluation plan gives every image once in source order. Each tensor
    /// belongs to the caller; the enumeration is lazy.
    /// </summary>
    IEnumerable<Tensor> Batches(MaeEpochPlan plan);
}

/// <summary>Labelled images for fine-tuning, probes and validation: a known count of same-sized CHW float images with
/// class indices 0 … K − 1, in batches made from a <see cref="MaeEpochPlan"/> as <see cref="IMaeImageSource"/>.</summary>
public interface IMaeLabeledImageSource
{
    long Count { get; }
    MaeImageShape Shape { get; }
    /// <summary>The largest label + 1 (every label is in [0, LabelBound)).</summary>
    int LabelBound { get; }

    /// <summary>As <see cref="IMaeImageSource.ReadsShards"/>.</summary>
    bool ReadsShards => false;

    /// <summary>Images [B, C, H, W] float32 and labels [B] int64, on the CPU and owned by the caller, of one epoch of
    /// <paramref name="plan"/> (as <see cref="IMaeImageSource.Batches"/>).</summary>
    IEnumerable<(Tensor Images, Tensor Labels)> Batches(MaeEpochPlan plan);
}

/// <summary>A source that makes the model's input itself — decoded, randomly cropped and flipped (when
/// <see cref="MaeEpochPlan.Training"/>), normalised (the file sources): the trainers apply no batch transform to its
/// batches. Sources without this mark hand over pixels, which the trainers' transform turns into model input.</summary>
internal interface IMaeModelInputSource
{
}
