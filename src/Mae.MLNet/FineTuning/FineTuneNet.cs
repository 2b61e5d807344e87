using Mae.MLNet.Model;
using Mae.MLNet.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.FineTuning;

/// <summary>The classifier fine-tuning trains, as the one task sees it: the ViT (<see cref="VitClassifier"/>) or a
/// ConvNeXt V2 with its head (<see cref="ConvNextV2"/>). Everything else — data, augmentation, loss, layer-decay
/// groups' rule, engine, checkpoints, validation — is shared (<see cref="MaeFineTuner"/>).</summary>
internal abstract class FineTuneNet
{
    public abstract nn.Module<Tensor, Tensor> Module { get; }
    /// <summary>The images it takes (size, channels), as the shared checks and augmentation read them.</summary>
    public abstract MaeConfig Geometry { get; }
    public abstract int NumClasses { get; }
    /// <summary>Where the head's weights are (validation runs there).</summary>
    public abstract Device Device { get; }
    public abstract ScalarType? ComputeDType { set; }
    public abstract double DropPathRate { get; set; }
    /// <summary>ViT: its position embeddings train (<see cref="MaeFineTuneOptions.TrainPositionEmbedding"/>); a
    /// ConvNeXt has none, so the flag is ignored.</summary>
    public virtual bool PositionEmbeddingTrains { get => false; set { } }
    /// <summary>Layer-wise lr decay groups (the model's layer ids and no-decay names, <see cref="MaeLayerDecay"/>).</summary>
    public abstract IReadOnlyList<MaeLayerDecay.Group> ParamGroups(double weightDecay, double layerDecay);
    /// <summary>Puts this model's architecture into a checkpoint header.</summary>
    public abstract MaeFineTuneCheckpointHeader Describe(MaeFineTuneCheckpointHeader header);
    /// <summary>Null when a checkpoint's header was written for this classifier; otherwise what it was written for.</summary>
    public abstract string? Mismatch(MaeFineTuneCheckpointHeader header);
    public abstract string Describe();

    public static FineTuneNet Of(VitClassifier model) => new Vit(model);
    public static FineTuneNet Of(ConvNextV2 model) => new ConvNext(model);

    sealed class Vit(VitClassifier model) : FineTuneNet
    {
        public override nn.Module<Tensor, Tensor> Module => model;
        public override MaeConfig Geometry => model.Config;
        public override int NumClasses => model.NumClasses;
        public override Device Device => model.head.weight!.device;
        public override ScalarType? ComputeDType { set => model.Encoder.ComputeDType = value; }
        public override double DropPathRate { get => model.DropPathRate; set => model.DropPathRate = value; }
        public override bool PositionEmbeddingTrains { get => model.Encoder.pos_embed.requires_grad; set => model.Encoder.pos_embed.requires_grad = value; }
        public override IReadOnlyList<MaeLayerDecay.Group> ParamGroups(double weightDecay, double layerDecay) => MaeLayerDecay.ParamGroups(model, weightDecay, layerDecay);
        public override MaeFineTuneCheckpointHeader Describe(MaeFineTuneCheckpointHeader h)
            => h with { Config = model.Config, NumClasses = model.NumClasses, GlobalPool = model.GlobalPool };
        public override string? Mismatch(MaeFineTuneCheckpointHeader h)
            => h.ConvNextConfig is not null ? $"a ConvNeXt V2 classifier ({h.ConvNextConfig}, {h.NumClasses} classes)"
               : h.Config != model.Config || h.NumClasses != model.NumClasses || h.GlobalPool != model.GlobalPool
                   ? $"a different classifier ({h.Config}, {h.NumClasses} classes, global pool {h.GlobalPool})" : null;
        public override string Describe() => $"{model.Config}, {model.NumClasses} classes, global pool {model.GlobalPool}";
    }

    sealed class ConvNext(ConvNextV2 model) : FineTuneNet
    {
        public override nn.Module<Tensor, Tensor> Module => model;
        public override MaeConfig Geometry => model.Config.InputGeometry;
        public override int NumClasses => model.NumClasses;
        public override Device Device => model.head!.fc!.weight!.device;
        public override ScalarType? ComputeDType { set => model.ComputeDType = value; }
        public override double DropPathRate { get => model.DropPathRate; set => model.DropPathRate = value; }
        public override IReadOnlyList<MaeLayerDecay.Group> ParamGroups(double weightDecay, double layerDecay) => MaeLayerDecay.ParamGroups(model, weightDecay, layerDecay);
        // Config carries the image geometry (the checkpoint reader requires it); ConvNextConfig the architecture.
        public override MaeFineTuneCheckpointHeader Describe(MaeFineTuneCheckpointHeader h)
            => h with { Config = model.Config.InputGeometry, ConvNextConfig = model.Config, NumClasses = model.NumClasses, GlobalPool = true };
        public override string? Mismatch(MaeFineTuneCheckpointHeader h)
            => h.ConvNextConfig is null ? $"a ViT classifier ({h.Config}, {h.NumClasses} classes)"
               : !h.ConvNextConfig.Equals(model.Config) || h.NumClasses != model.NumClasses ? $"a different classifier ({h.ConvNextConfig}, {h.NumClasses} classes)" : null;
        public override string Describe() => $"{model.Config}, {model.NumClasses} classes";
    }
}
