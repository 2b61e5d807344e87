// Child process for the kill-and-resume integration tests:
//   Mae.MLNet.TrainHost <checkpointDir> <epochs> <images> <lossesOut> [resume] [delayMs] [imageFolder workers]
// With an image folder the images come from its files (MaeImageFileSource, 16-px crops) instead of memory.
// Trains the tiny MAE with a checkpoint after every epoch, prints "STEP <epoch> <step>" after each batch
// (flushed, so the parent can kill it at a known point), and writes every step's loss as exact float bits.
using Mae.MLNet.TrainHost;
using Mae.MLNet.Input;
using Mae.MLNet.Pretraining;

if (args.Length > 0 && args[0] == "dp") return DataParallelRun.Run(args[1..]);
if (args.Length > 0 && args[0] == "featurize") return ShardedFeaturizeRun.Run(args[1..]);

if (args.Length < 4)
{
    Console.Error.WriteLine("usage: Mae.MLNet.TrainHost <checkpointDir> <epochs> <images> <lossesOut> [resume] [delayMs]");
    return 2;
}
string dir = args[0];
int epochs = int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
int images = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
string output = args[3];
bool resume = args.Length > 4 && args[4] == "resume";
int delayMs = args.Length > 5 ? int.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture) : 0;

var options = TinyRun.Options(epochs, dir);
options.Resume = resume;
string? folder = args.Length > 6 ? args[6] : null;
int workers = args.Length > 7 ? int.Parse(args[7], System.Globalization.CultureInfo.InvariantCulture) : 1;
using var arrays = folder is null ? MaeImageSource.FromArrays(TinyRun.Images(images), 3, 16, 16) : null;
IMaeImageSource source = folder is null ? arrays!
    : Mae.MLNet.Input.MaeImageFileSource.FromFolder(folder, new Mae.MLNet.Input.MaeImageInputOptions { Augmentation = { OutputSize = 16 }, Workers = workers });
using var model = MaePretrainer.CreateModel(TinyRun.Config, options);
var progress = new SyncProgress(p =>
{
    Console.Out.WriteLine($"STEP {p.Epoch} {p.Step}");
    Console.Out.Flush();
    if (delayMs > 0) Thread.Sleep(delayMs);
});
var result = new MaePretrainer(options).Train(model, source, progress);
File.WriteAllText(output, TinyRun.FormatLosses(result.StepLosses));
Console.Out.WriteLine($"DONE {result.GlobalSteps} resumed-from={result.ResumedFrom ?? "-"}");
return 0;

sealed class SyncProgress(Action<MaePretrainProgress> report) : IProgress<MaePretrainProgress>
{
    public void Report(MaePretrainProgress value) => report(value);
}
