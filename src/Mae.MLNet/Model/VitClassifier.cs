using Mae.MLNet.Runtime;
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

    /// <summary>A classifier of <paramref name="numClasses"/> classes; <paramref name="dropPathRate"/> is the last block's stochastic depth (<see cref="DropPathRate"/>).</summary>
    public VitClassifier(MaeConfig config, int numClasses, bool globalPool = true, double dropPathRate = 0) : base(TorchBackend.Checked(nameof(VitClassifier)))
    {
        Model.DropPath.CheckRate(dropPathRate, nameof(dropPathRate));
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
        DropPathRate = dropPathRate;
        MaeInit.InitializeLikeReference(this, Encoder.patch_embed);
        using (no_grad())
        {
            // main_finetune.py: trunc_normal_(model.head.weight, std=2e-5); the bias stays zero.
            // (TorchSharp 0.107's nn.init.trunc_normal_ gave std ≈ 2e-12 here, so the inverse-CDF draw is spelled out.)
            TruncNormal(head.weight, std: 2e-5);
            nn.init.zeros_(head.bias!);
        }
    }

    /// <summary>
    /// Stochastic depth (timm's <c>drop_path_rate</c>; main_finetune.py's <c>--drop_path</c>, default 0.1 there, 0
    /// here): block i gets the drop-path rate <c>rate·i/(depth − 1)</c> (timm's <c>linspace(0, rate, depth)</c>),
    /// which acts in training mode only (<see cref="Block.DropPathRate"/>). Setting it sets every block's rate.
    /// </summary>
    public double DropPathRate
    {
        get => dropPathRate;
        set
        {
            Model.DropPath.CheckRate(value, nameof(DropPathRate));
            dropPathRate = value;
            for (int i = 0; i < Encoder.blocks.Count; i++) Encoder.blocks[i].DropPathRate = DropPathProbability(i);
        }
    }
    double dropPathRate;

    /// <summary>Drop probability of block <paramref name="block"/>: <c>rate·i/(depth − 1)</c>, as <c>torch.linspace(0, rate, depth)</c>.</summary>
    public double DropPathProbability(int block)
        => Config.Depth <= 1 ? 0.0 : DropPathRate * block / (Config.Depth - 1);

    /// <summary>Parameters without weight decay besides the 1-D ones: the encoder's (timm's ViT <c>no_weight_decay()</c>:
    /// <c>cls_token</c>, <c>pos_embed</c>), which main_finetune.py passes to <c>param_groups_lrd</c>.</summary>
    public IReadOnlySet<string> NoWeightDecay() => Encoder.NoWeightDecay();

    /// <summary>Layer id for layer-wise lr decay (<see cref="MaeEncoder.LayerId"/>): fc_norm / norm and head get
    /// <see cref="NumLayers"/>.</summary>
    public int LayerId(string name) => Encoder.LayerId(name);

    /// <summary>Blocks + 1 (<see cref="MaeEncoder.NumLayers"/>).</summary>
    public int NumLayers => Encoder.NumLayers;

    /// <summary>
    /// PyTorch's <c>trunc_normal_(t, mean, std, a, b)</c> (bounds a, b in absolute units, as timm's): draw u uniformly
    /// in [2Φ((a − mean)/std) − 1, 2Φ((b − mean)/std) − 1], then <c>mean + std·√2·erfinv(u)</c>, clamped to [a, b].
    /// </summary>
    public static void TruncNormal(Tensor t, double std, double mean = 0, double a = -2, double b = 2)
    {
        static double Cdf(double x) => (1 + Erf(x / Math.Sqrt(2))) / 2;
        double l = Cdf((a - mean) / std), u = Cdf((b - mean) / std);
        using var noGrad = no_grad();
        using var lo = a.ToScalar();
        using var hi = b.ToScalar();
        t.uniform_(2 * l - 1, 2 * u - 1).erfinv_().TimesInPlace(std * Math.Sqrt(2)).PlusInPlace(mean).clamp_(lo, hi);
    }

    /// <summary>erf by Abramowitz–Stegun 7.1.26 (|error| &lt; 1.5e-7): only used for the probabilities of the bounds.</summary>
    static double Erf(double x)
    {
        double sign = Math.Sign(x);
        x = Math.Abs(x);
        double t = 1 / (1 + 0.3275911 * x);
        double y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return sign * y;
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
