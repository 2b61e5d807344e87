using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// A batched transform the trainer applies on the training device before the forward pass to every batch of a source
/// that hands over pixels (in memory, an ML.NET column; the file sources crop and normalise themselves):
/// augmentation (random resized crop, flip) and per-channel mean/std normalisation go through this hook.
/// Randomness must come from libtorch's global generator so that checkpoints (which save its state) cover it.
/// </summary>
public interface IBatchTransform
{
    /// <summary>Maps a float batch [B, C, H, W] to the model's input batch [B, C', H', W']. The result may be
    /// created inside the caller's dispose scope; the trainer disposes it after the step.</summary>
    Tensor Apply(Tensor batch);

    /// <summary>The output image shape for a given input shape, when known without running the transform;
    /// <c>null</c> (the default) means "unknown": the trainer then checks the first transformed batch.</summary>
    MaeImageShape? OutputShape(MaeImageShape input) => null;
}
