; Inno Setup script: a per-user homefarm setup for Windows, no administrator rights needed.
; Built by installer/build_windows.ps1 from the PyInstaller bundle in dist\homefarm.
; tests/test_installer.py keeps the names, paths and version here consistent with the app.

#define AppName "homefarm"
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define AppExe "homefarm.exe"
#define CliExe "homefarm-cli.exe"
#define RunKey "Software\Microsoft\Windows\CurrentVersion\Run"
#define RunValue "homefarm"

[Setup]
AppId={{7C1E4B52-8B0B-4F7C-9D2A-5E3F8A6B1C90}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=homefarm
AppPublisherURL=https://homefarm.dev
VersionInfoVersion={#AppVersion}
VersionInfoDescription=homefarm render worker setup
; Per user: no UAC prompt; {autopf} is then %LOCALAPPDATA%\Programs.
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
UninstallDisplayIcon={app}\{#AppExe}
OutputDir=..\dist
OutputBaseFilename=homefarm-{#AppVersion}-setup
SetupIconFile=..\resources\icons\waiting.ico
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
CloseApplications=yes

[Tasks]
Name: "startatlogin"; Description: "Start homefarm when I sign in"; GroupDescription: "Options:"
Name: "desktopicon"; Description: "Create a desktop shortcut"; GroupDescription: "Options:"; Flags: unchecked

[Files]
Source: "..\dist\homefarm\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; The same Run value the app's own "Start at login" writes (worker_app/system/autostart.py): quoted path.
Root: HKCU; Subkey: "{#RunKey}"; ValueType: string; ValueName: "{#RunValue}"; ValueData: """{app}\{#AppExe}"""; Tasks: startatlogin; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Description: "Start homefarm now"; Flags: nowait postinstall skipifsilent

[UninstallRun]
Filename: "{cmd}"; Parameters: "/C taskkill /IM {#AppExe} /F"; Flags: runhidden; RunOnceId: "StopTray"

[Code]
// The Run value is removed even when the app itself (not this setup) wrote it.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValue}');
    // The owner's settings, statistics and unsent results stay unless they ask.
    DataDir := ExpandConstant('{localappdata}\{#AppName}');
    if DirExists(DataDir) then
      if MsgBox('Also delete your homefarm settings, statistics and unsent results in ' + DataDir + '?',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
