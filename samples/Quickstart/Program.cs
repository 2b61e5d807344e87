using System.CommandLine;
using Mae.MLNet.Quickstart;
using Mae.MLNet.Runtime;

// Mae.MLNet quickstart: pre-train a small masked autoencoder on real images (no labels), then linear-probe its
// features with ML.NET's SDCA next to the same probe on raw pixels, and draw reconstructions and the loss curve.
// Default data: the Fashion-MNIST subset shipped in samples/data/fashion-mnist-subset (no download).

var data = new Option<DirectoryInfo?>("--data")
{
    Description = "Folder with the four Fashion-MNIST IDX files (e.g. the full set from Debian's dataset-fashion-mnist, " +
                  "/usr/share/datasets/fashion-mnist). Default: the 4 000 + 1 000 image subset shipped with the sample.",
};
var images = new Option<DirectoryInfo?>("--images")
{
    Description = "Your own images instead: a folder with one subfolder per class (png/jpg/bmp/gif/webp); 20 % are held out for the probe.",
};
var weights = new Option<FileInfo?>("--weights")
{
    Description = "Public MAE weights (official .pth, timm/our .safetensors, or a Hugging Face folder): skip pre-training and featurize with them.",
};
var device = new Option<string>("--device") { Description = "Where to run: auto (CUDA when available), cpu or cuda.", DefaultValueFactory = _ => "auto" };
device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
var epochs = new Option<int>("--epochs")
{
    Description = "Most pre-training epochs; fewer when --minutes would be exceeded (a short calibration run measures the speed first).",
    DefaultValueFactory = _ => 200,
};
var minutes = new Option<double>("--minutes") { Description = "Time box for pre-training, in minutes (0 = no box: exactly --epochs).", DefaultValueFactory = _ => 3.0 };
var output = new Option<DirectoryInfo>("--out") { Description = "Where to write the pictures, the weights and summary.json.", DefaultValueFactory = _ => new DirectoryInfo("quickstart-output") };
var imageSize = new Option<int?>("--image-size") { Description = "Model input size for --images (default 32) or --weights (default: the weights' own size)." };
var channels = new Option<int>("--channels") { Description = "Channels for --images: 3 (RGB) or 1 (grey).", DefaultValueFactory = _ => 3 };
channels.AcceptOnlyFromAmong("1", "3");
var maxTrain = new Option<int?>("--max-train") { Description = "Use at most this many training images of the IDX data (e.g. 10000 of the full 60 000)." };
var maxTest = new Option<int?>("--max-test") { Description = "Use at most this many test images of the IDX data." };
var seed = new Option<int>("--seed") { Description = "Seed for libtorch and ML.NET.", DefaultValueFactory = _ => 0 };
var threads = new Option<int?>("--threads") { Description = "libtorch intra-op threads (default: libtorch's choice, one per core)." };

var root = new RootCommand("Mae.MLNet quickstart: masked-autoencoder pre-training, SDCA linear probe against raw pixels, reconstruction pictures.")
{
    data, images, weights, device, epochs, minutes, output, imageSize, channels, maxTrain, maxTest, seed, threads,
};
epochs.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) r.AddError($"--epochs must be at least 1; got {r.GetValueOrDefault<int>()}."); });
minutes.Validators.Add(r => { if (r.GetValueOrDefault<double>() < 0) r.AddError($"--minutes must be ≥ 0; got {r.GetValueOrDefault<double>()}."); });
root.Validators.Add(result =>
{
    if (result.GetValue(data) is not null && result.GetValue(images) is not null)
        result.AddError("Give either --data (IDX files) or --images (a class-per-subfolder folder), not both.");
});
root.SetAction(result =>
{
    var settings = new QuickstartSettings
    {
        DataDirectory = result.GetValue(data)?.FullName,
        ImageFolder = result.GetValue(images)?.FullName,
        WeightsPath = result.GetValue(weights)?.FullName,
        Device = result.GetValue(device) switch { "cpu" => MaeDevice.Cpu, "cuda" => MaeDevice.Cuda, _ => MaeDevice.Auto },
        MaxEpochs = result.GetValue(epochs),
        Minutes = result.GetValue(minutes),
        OutputDirectory = result.GetValue(output)!.FullName,
        ImageSize = result.GetValue(imageSize),
        Channels = result.GetValue(channels),
        MaxTrain = result.GetValue(maxTrain),
        MaxTest = result.GetValue(maxTest),
        Seed = result.GetValue(seed),
        Threads = result.GetValue(threads),
    };
    return QuickstartRun.Run(settings);
});
return root.Parse(args).Invoke();
