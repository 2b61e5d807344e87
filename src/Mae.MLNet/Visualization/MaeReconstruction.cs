using Mae.MLNet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Visualization;

public static partial class MaeReconstruction
{
    /// <summary>
    /// The four pictures of the paper's Fig. 3 (the reference notebook's <c>run_one_image</c>) for a batch, all
    /// [N, C, H, W] float32 on the CPU in the model's input units (i.e. still mean/std-normalised), plus the pixel mask.
    /// </summary>
    public sealed class Result : IDisposable
    {
        /// <summary>The input images.</summary>
        public Tensor Original { get; }
        /// <summary>The input with the removed patches set to 0 (the notebook's <c>x·(1 − mask)</c>).</summary>
        public Tensor Masked { get; }
        /// <summary>The decoder's prediction for every patch, in pixel units (un-normalised for norm_pix_loss models).</summary>
        public Tensor Reconstruction { get; }
        /// <summary>Visible patches from the original, removed patches from the reconstruction.</summary>
        public Tensor Pasted { get; }
        /// <summary>[N, 1, H, W]: 1 where the patch was removed, 0 where it was visible.</summary>
        public Tensor Mask { get; }

        public Result(Tensor original, Tensor masked, Tensor reconstruction, Tensor pasted, Tensor mask)
        {
            Original = original; Masked = masked; Reconstruction = reconstruction; Pasted = pasted; Mask = mask;
        }

        internal Result MoveToOuterDisposeScope()
        {
            foreach (var t in new[] { Original, Masked, Reconstruction, Pasted, Mask }) t.MoveToOuterDisposeScope();
            return this;
        }

        public void Dispose()
        {
            Original.Dispose(); Masked.Dispose(); Reconstruction.Dispose(); Pasted.Dispose(); Mask.Dispose();
        }
    }
}

/// <summary>Runs an MAE on images and turns its per-patch predictions back into pictures.</summary>
public static partial class MaeReconstruction
{
    /// <summary>The ε of <see cref="MaskedAutoencoder.NormalizePatches"/>.</summary>
    public const double NormPixEpsilon = 1e-6;

    /// <summary>
    /// Masks <paramref name="images"/> ([N, C, H, W] in the model's input units), runs the model in eval mode without
    /// gradients (its training flag is restored afterwards) and returns the Fig. 3 pictures. <paramref name="noise"/>
    /// [N, L] fixes the mask (small values are kept), as in <see cref="MaskedAutoencoder.Forward"/>.
    /// </summary>
    // RS0026: the two Compute overloads differ in their first parameter's type (the model), so the optional ones cannot make a call ambiguous.
#pragma warning disable RS0026
    public static MaeReconstruction.Result Compute(MaskedAutoencoder model, Tensor images, double maskRatio = 0.75, Tensor? noise = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(model);
        return Run(model, images, x =>
        {
            var (_, pred, mask) = model.Forward(x, maskRatio, noise);
            return FromPrediction(model, x, pred, mask);
        });
    }

    /// <summary>The same pictures for ConvNeXt V2's FCMAE: <paramref name="noise"/> [N, L] fixes the mask of 32-px cells
    /// (small values kept, as <see cref="Fcmae.RandomMask"/>); the mask is drawn upsampled to the pixels and the decoder's
    /// output is un-normalised per cell as the ViT's is per patch.</summary>
#pragma warning disable RS0026
    public static MaeReconstruction.Result Compute(Fcmae model, Tensor images, double maskRatio = 0.6, Tensor? noise = null)
#pragma warning restore RS0026
    {
        ArgumentNullException.ThrowIfNull(model);
        return Run(model, images, x =>
        {
            var (_, pred, mask) = model.Forward(x, maskRatio, noise);
            var c = model.Config;
            var geometry = new MaeConfig { ImageSize = c.ImageSize, InChannels = c.InChannels, PatchSize = c.MaskPatchSize, NormPixLoss = c.NormPixLoss };
            return FromPatches(geometry, x, model.PredictionPatches(pred), mask, model.Patchify, model.Unpatchify);
        });
    }

    /// <summary>Eval mode without gradients on the model's device (its training flag restored afterwards).</summary>
    static MaeReconstruction.Result Run(nn.Module model, Tensor images, Func<Tensor, MaeReconstruction.Result> compute)
    {
        ArgumentNullException.ThrowIfNull(images);
        bool wasTraining = model.training;
        var device = model.parameters().First().device;
        try
        {
            model.eval();
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            return compute(images.to(ScalarType.Float32, device)).MoveToOuterDisposeScope();
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    /// <summary>
    /// Builds the pictures from a prediction [N, L, p²·C] and mask [N, L] (1 = removed) for <paramref name="images"/>.
    /// For a model with <c>NormPixLoss</c> the prediction is in normalised-patch units and is mapped back with each
    /// target patch's mean and unbiased variance (<see cref="UnnormalizePatches"/>).
    /// </summary>
    public static MaeReconstruction.Result FromPrediction(MaskedAutoencoder model, Tensor images, Tensor pred, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(model);
        var cfg = model.Config;
        if (images is null) throw new ArgumentNullException(nameof(images));
        if (images.dim() != 4 || images.shape[1] != cfg.InChannels || images.shape[2] != cfg.ImageSize || images.shape[3] != cfg.ImageSize)
            throw new ArgumentException(
                $"images must be [N, {cfg.InChannels}, {cfg.ImageSize}, {cfg.ImageSize}]; got [{string.Join(", ", images.shape)}].", nameof(images));
        return FromPatches(cfg, images, pred, mask, model.Patchify, model.Unpatchify);
    }

    /// <summary>The pictures from per-patch predictions [N, L, p²·C] in <paramref name="patchify"/>'s layout and a mask [N, L]
    /// (1 = removed), for either architecture (<paramref name="cfg"/>: image size, channels, patch, loss target).</summary>
    static MaeReconstruction.Result FromPatches(MaeConfig cfg, Tensor images, Tensor pred, Tensor mask,
        Func<Tensor, Tensor> patchify, Func<Tensor, Tensor> unpatchify)
    {
        long n = images.shape[0];
        MaeInputs.CheckShape(pred, nameof(pred), "per-patch predictions", n, cfg.NumPatches, cfg.PatchDim);
        MaeInputs.CheckShape(mask, nameof(mask), "a patch mask", n, cfg.NumPatches);
        using var scope = NewDisposeScope();
        var x = images.detach().to(ScalarType.Float32);
        var p = pred.detach().to(ScalarType.Float32, x.device);
        if (cfg.NormPixLoss) p = UnnormalizePatches(p, patchify(x));
        var y = unpatchify(p);
        var m = mask.detach().to(ScalarType.Float32, x.device).unsqueeze(-1).expand(n, cfg.NumPatches, cfg.PatchDim);
        var maskImage = unpatchify(m.contiguous());                        // [N, C, H, W], equal over C
        var keep = maskImage.OneMinus();
        var masked = x * keep;
        var pasted = masked.Plus(y * maskImage);
        var pixelMask = maskImage[.., ..1, .., ..];
        return new MaeReconstruction.Result(
            x.cpu().contiguous().MoveToOuterDisposeScope(), masked.cpu().contiguous().MoveToOuterDisposeScope(),
            y.cpu().contiguous().MoveToOuterDisposeScope(), pasted.cpu().contiguous().MoveToOuterDisposeScope(),
            pixelMask.cpu().contiguous().MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The inverse of <see cref="MaskedAutoencoder.NormalizePatches"/>: <c>pred · sqrt(var + 1e-6) + mean</c> with
    /// the mean and unbiased variance of each row of <paramref name="targetPatches"/> (same shape as pred).
    /// </summary>
    public static Tensor UnnormalizePatches(Tensor pred, Tensor targetPatches)
    {
        ArgumentNullException.ThrowIfNull(pred);
        ArgumentNullException.ThrowIfNull(targetPatches);
        if (!pred.shape.SequenceEqual(targetPatches.shape))
            throw new ArgumentException(
                $"pred [{string.Join(", ", pred.shape)}] and targetPatches [{string.Join(", ", targetPatches.shape)}] must have the same shape.", nameof(pred));
        using var scope = NewDisposeScope();
        var mean = targetPatches.mean(new long[] { -1 }, keepdim: true);
        var variance = targetPatches.var(-1, unbiased: true, keepdim: true);
        return (pred * variance.Plus(NormPixEpsilon).sqrt()).Plus(mean).MoveToOuterDisposeScope();
    }
}
