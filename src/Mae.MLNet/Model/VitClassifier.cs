using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// The fine-tuning ViT of the official code (<c>models_vit.py</c>): the MAE encoder, then either global average
/// pooling of the patch tokens followed by <c>fc_norm</c> (<c>global_pool=True</c>, the paper's default; the final
/// <c>norm</c> is removed) or the cls token after <c>norm</c>, then a linear <c>head</c>. Official parameter names.
/// </summary>
public sealed class VitClassifier : nn.Module<Tensor, Tensor>
{
    public MaeConfig Config { get; }
    public bool GlobalPool { get; }
    public int NumClasses { get; }
    /// <summary>The encoder parts (patch_embed, tokens, blocks; its <c>norm</c> is used only without global pooling).</summary>
    public MaeEncoder Encoder { get; }
    public readonly LayerNorm? fc_norm;
    public readonly Linear head;

    public VitClassifier(MaeConfig config, int numClasses, bool globalPool = true) : base(nameof(VitClassifier))
    {
        if (numClasses < 1) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "At least one class is needed.");
        Config = config.Validate();
        GlobalPool = globalPool;
        NumClasses = numClasses;
        Encoder = new MaeEncoder(config, owner: this);
        register_parameter("cls_token", Encoder.InitialClsToken);
        register_parameter("pos_embed", Encoder.InitialPosEmbed);
        register_module("patch_embed", Encoder.patch_embed);
        register_module("blocks", Encoder.blocks);
        if (globalPool)
        {
            fc_norm = nn.LayerNorm(config.EmbedDim, config.LayerNormEps);
            register_module("fc_norm", fc_norm);
        }
        else register_module("norm", Encoder.norm);
        head = nn.Linear(config.EmbedDim, numClasses, hasBias: true);
        register_module("head", head);
        MaeInit.InitializeLikeReference(this, Encoder.patch_embed);
        using (no_grad())
        {
            // main_finetune.py: trunc_normal_(model.head.weight, std=2e-5); the bias stays zero.
            nn.init.trunc_normal_(head.weight, std: 2e-5);
            nn.init.zeros_(head.bias!);
        }
    }

    /// <summary>The features the head sees, [N, D]: fc_norm(mean of patch tokens), or norm(x)[:, 0].</summary>
    public Tensor ForwardFeatures(Tensor images)
    {
        MaeInputs.CheckImages(images, Config, nameof(images));
        using var scope = NewDisposeScope();
        var x = Encoder.PrependCls(Encoder.Embed(images));
        foreach (var block in Encoder.blocks) x = block.forward(x);
        var features = GlobalPool
            ? fc_norm!.forward(x[.., 1.., ..].mean(new long[] { 1 }))
            : Encoder.norm.forward(x)[.., 0, ..];
        return features.MoveToOuterDisposeScope();
    }

    /// <summary>Class logits [N, classes].</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        return head.forward(ForwardFeatures(images)).MoveToOuterDisposeScope();
    }
}
