using Mae.MLNet.Input;
using Mae.MLNet.Model;

namespace Mae.MLNet.Pretraining;

/// <summary>
/// How to pre-train a given model: batch, base learning rate, epochs, warm-up and the RandomResizedCrop scale.
/// <see cref="Paper"/> is the reference's (main_pretrain.py / PRETRAIN.md: blr 1.5e-4, 400 epochs with 40 of warm-up,
/// crop scale 0.2–1); <see cref="SmallImages"/> is for the 32-px presets (see its remarks). <see cref="For"/> picks one
/// from the model, and <see cref="ApplyTo"/> writes it into options that the caller may then override.
/// </summary>
/// <param name="Name">"paper" or "small-images", for messages.</param>
/// <param name="BatchSize">Images per step.</param>
/// <param name="BaseLearningRate">lr = base × batch / 256.</param>
/// <param name="Epochs">Epochs of the full schedule.</param>
/// <param name="WarmupEpochs">Linear warm-up epochs (10 % of <paramref name="Epochs"/> in both recipes).</param>
/// <param name="CropScaleMin">Lower bound of the RandomResizedCrop area fraction (upper bound 1).</param>
public sealed record MaePretrainRecipe(string Name, int BatchSize, double BaseLearningRate, int Epochs, double WarmupEpochs, double CropScaleMin)
{
    /// <summary>The reference recipe: blr 1.5e-4 (meant for an effective batch of 4 096), 400 epochs, 40 of warm-up,
    /// crop scale 0.2–1; batch 64 per step (the reference's per-GPU default).</summary>
    public static MaePretrainRecipe Paper => new("paper", 64, 1.5e-4, 400, 40, 0.2);

    /// <summary>
    /// The 32-px presets' recipe. Batch 256 (yjh0410/MAE's ViT-Nano CIFAR-10 run, and the batch the project's
    /// Fashion-MNIST study used). blr 2e-3, i.e. lr 2e-3 at batch 256: the paper's blr 1.5e-4 at its batch 4 096 is an
    /// absolute lr of 2.4e-3, and the small models of this project trained well at 3e-3 (Fashion-MNIST study, 96-wide
    /// encoder); a batch of 256 gives 16× the paper's optimizer steps per epoch, so the paper's absolute lr is kept rather
    /// than scaled down linearly (which would give 1.5e-4 and barely move a small model in a CPU-sized budget).
    /// 400 epochs with 40 of warm-up (the paper's and yjh0410's schedule). Crop scale 0.35–1 instead of 0.2–1: at
    /// 32 px a 0.2 crop is a 14-px square blown up 2.3× (mostly interpolation blur), at 0.35 it is 19 px or more.
    /// On 10 000 CIFAR-10 photos (docs/results.md), nano32 in 15-minute boxes side by side, blr 2e-3 probed better than
    /// 5e-4 on every probe (linear on the last 4 blocks 52.8 against 50.6 %, attentive 60.7 against 55.8 %; one seed); a
    /// higher lr was not tried. CI's 3 + 3-epoch toy check (<c>.ci/cli-tool.sh</c>, 1 200 Fashion-MNIST PNGs) fine-tuned
    /// worse from this lr than from the paper's blr 1.5e-4 (23.5 against 33–38 %): far too short to judge an lr.
    /// </summary>
    public static MaePretrainRecipe SmallImages => new("small-images", 256, 2e-3, 400, 40, 0.35);

    /// <summary><see cref="SmallImages"/> for models of at most 64 px, else <see cref="Paper"/>.</summary>
    public static MaePretrainRecipe For(MaeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.ImageSize <= 64 ? SmallImages : Paper;
    }

    /// <summary>Writes batch, base lr, epochs and warm-up into <paramref name="options"/> (clears an absolute
    /// <c>LearningRate</c>); returns it.</summary>
    public MaePretrainOptions ApplyTo(MaePretrainOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ApplySchedule(BatchSize, BaseLearningRate, Epochs, WarmupEpochs);
        return options;
    }

    /// <summary>The pre-training augmentation for <paramref name="config"/>: its size and channels, crop scale
    /// <see cref="CropScaleMin"/>–1, the rest as the reference.</summary>
    public MaeAugmentationOptions Augmentation(MaeConfig config) => new()
    {
        OutputSize = config.ImageSize, Channels = config.InChannels, ScaleMin = CropScaleMin, ScaleMax = 1.0,
    };
}
