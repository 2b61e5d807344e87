using Mae.MLNet.Input;
using Mae.MLNet.Model;
using Mae.MLNet.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Pretraining;

/// <summary>The architecture pre-training trains, as the one task sees it: the ViT MAE (<see cref="MaskedAutoencoder"/>)
/// or ConvNeXt V2's FCMAE (<see cref="Fcmae"/>). Everything else — data, engine, schedule, checkpoints, progress — is shared.</summary>
internal abstract class PretrainNet
{
    public abstract nn.Module Module { get; }
    /// <summary>What one image must be.</summary>
    public abstract MaeImageShape Input { get; }
    /// <summary>Masked units per image (ViT patches, FCMAE last-stage cells): the width of the masking noise.</summary>
    public abstract int NumPatches { get; }
    public abstract ScalarType? ComputeDType { set; }
    public abstract IEnumerable<string> NoWeightDecay();
    /// <summary>The masked-reconstruction loss of a batch; <paramref name="noise"/> null: the model's own draw.</summary>
    public abstract Tensor Loss(Tensor images, double maskRatio, Tensor? noise);
    /// <summary>Puts this model's config into a checkpoint header.</summary>
    public abstract MaePretrainCheckpointHeader Describe(MaePretrainCheckpointHeader header);
    /// <summary>Null when a checkpoint's header was written for this model's config; otherwise what it was written for.</summary>
    public abstract string? Mismatch(MaeTrainingCheckpointHeader header);
    public abstract string Describe();

    public static PretrainNet Of(MaskedAutoencoder model) => new Vit(model);
    public static PretrainNet Of(Fcmae model) => new ConvNext(model);

    sealed class Vit(MaskedAutoencoder model) : PretrainNet
    {
        public override nn.Module Module => model;
        public override MaeImageShape Input => new(model.Config.InChannels, model.Config.ImageSize, model.Config.ImageSize);
        public override int NumPatches => model.Config.NumPatches;
        public override ScalarType? ComputeDType { set => model.ComputeDType = value; }
        public override IEnumerable<string> NoWeightDecay() => model.NoWeightDecay();
        public override Tensor Loss(Tensor images, double maskRatio, Tensor? noise) => model.Forward(images, maskRatio, noise).loss;
        public override MaePretrainCheckpointHeader Describe(MaePretrainCheckpointHeader h) => h with { Config = model.Config };
        public override string? Mismatch(MaeTrainingCheckpointHeader h)
            => h.ConvNextConfig is not null ? $"an FCMAE ({h.ConvNextConfig})" : h.Config != model.Config ? h.Config.ToString() : null;
        public override string Describe() => model.Config.ToString();
    }

    sealed class ConvNext(Fcmae model) : PretrainNet
    {
        public override nn.Module Module => model;
        public override MaeImageShape Input => new(model.Config.InChannels, model.Config.ImageSize, model.Config.ImageSize);
        public override int NumPatches => model.NumPatches;
        public override ScalarType? ComputeDType { set => model.ComputeDType = value; }
        public override IEnumerable<string> NoWeightDecay() => model.Encoder.NoWeightDecay();
        public override Tensor Loss(Tensor images, double maskRatio, Tensor? noise) => model.Forward(images, maskRatio, noise).loss;
        public override MaePretrainCheckpointHeader Describe(MaePretrainCheckpointHeader h) => h with { ConvNextConfig = model.Config };
        public override string? Mismatch(MaeTrainingCheckpointHeader h)
            => h.ConvNextConfig is null ? $"a ViT MAE ({h.Config})" : !h.ConvNextConfig.Equals(model.Config) ? h.ConvNextConfig.ToString() : null;
        public override string Describe() => $"FCMAE {model.Config}";
    }
}
